"""control_msgs' FollowJointTrajectory types, built into the venv by ``make ros-types``.

The vendored interface files are upstream's, byte for byte (git blob ids of the cited
commit); the built types round-trip a goal, feedback and a result through a real rclpy
ActionServer and ActionClient over DDS. Without the build the round trip is skipped,
except in CI, where ``make test`` builds the types first and their absence is a failure.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from pathlib import Path

import pytest
from rosgraph import built_types

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "vendor" / "control_msgs"


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.mark.parametrize(
    "package, commit, files",
    [
        ("control_msgs", "13dacdd8748264b6cd7cbbc9893c18c90e24be00", 5),
        ("ur_dashboard_msgs", "3252ef569617cb68424d3bfe3c2795bf6e731cc0", 4),
        ("franka_msgs", "40cf08b6f0c2d66fa568b2a3336f1ac7971995ed", 7),
    ],
)
def test_vendored_files_are_upstreams_at_the_cited_commit(package, commit, files):
    folder = VENDOR.parent / package
    readme = (folder / "README.md").read_text()
    assert commit in readme
    rows = re.findall(r"^\s*\| `([^`]+)` \| `[^`]+` \| `([0-9a-f]{40})` \|$", readme, re.M)
    assert len(rows) == files, rows
    for name, blob in rows:
        assert git_blob_id(folder / name) == blob, f"{package}/{name} differs from upstream"
    # Every interface file built is one of them (CMakeLists.txt lists exactly these).
    cmake = (folder / "CMakeLists.txt").read_text()
    built = set(re.findall(r"^\s+((?:action|msg)/\w+\.(?:action|msg))$", cmake, re.M))
    assert built == {n for n, _ in rows if n.startswith(("action/", "msg/"))}
    # ...and the build script builds the package.
    assert f'"{package} ' in (VENDOR.parent / "build_ros_types.sh").read_text()


def follow_joint_trajectory():
    return built_types("control_msgs.action", "FollowJointTrajectory")[0]


def test_follow_joint_trajectory_round_trip_over_dds():
    pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")
    action = follow_joint_trajectory()
    import rclpy
    from rclpy.action import ActionClient, ActionServer
    from rclpy.executors import MultiThreadedExecutor
    from trajectory_msgs.msg import JointTrajectoryPoint

    os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("fjt_round_trip", context=ctx)
    received = []

    def execute(handle):
        received.append(handle.request)
        feedback = action.Feedback(joint_names=list(handle.request.trajectory.joint_names))
        feedback.desired.positions = [0.5]
        handle.publish_feedback(feedback)
        handle.abort()
        return action.Result(
            error_code=action.Result.PATH_TOLERANCE_VIOLATED, error_string="joint a off path"
        )

    name = f"/fjt{os.getpid()}/follow_joint_trajectory"
    server = ActionServer(node, action, name, execute)
    client = ActionClient(node, action, name)
    executor = MultiThreadedExecutor(num_threads=2, context=ctx)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        assert client.wait_for_server(timeout_sec=20)
        goal = action.Goal()
        goal.trajectory.joint_names = ["a"]
        goal.trajectory.points = [JointTrajectoryPoint(positions=[1.0])]
        from control_msgs.msg import JointTolerance

        goal.path_tolerance = [JointTolerance(name="a", position=0.1)]
        feedback = []
        sent = client.send_goal_async(goal, feedback_callback=feedback.append)
        deadline = time.monotonic() + 20
        while not sent.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        handle = sent.result()
        assert handle.accepted
        done = handle.get_result_async()
        while not done.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        result = done.result().result
        assert result.error_code == -4 and result.error_string == "joint a off path"
        assert received[0].path_tolerance[0].position == pytest.approx(0.1)
        assert received[0].trajectory.points[0].positions.tolist() == [1.0]
        # Feedback may be lost before the client's feedback subscription matches; the
        # result is always delivered.
        assert all(f.feedback.desired.positions.tolist() == [0.5] for f in feedback)
    finally:
        executor.shutdown()
        server.destroy()
        client.destroy()
        node.destroy_node()
        ctx.try_shutdown()


def test_auto_transport_is_the_action_only_where_the_types_exist(monkeypatch):
    pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")
    from icpi.robot import controller_link

    monkeypatch.setattr(controller_link, "follow_joint_trajectory", lambda: None)
    assert controller_link.resolve_transport("auto") == "topic"
    assert controller_link.resolve_transport("topic") == "topic"
    with pytest.raises(ValueError, match="make ros-types"):
        controller_link.resolve_transport("action")
    with pytest.raises(ValueError, match="trajectory_transport must be one of"):
        controller_link.resolve_transport("service")
    monkeypatch.setattr(controller_link, "follow_joint_trajectory", lambda: object)
    assert controller_link.resolve_transport("auto") == "action"
