"""Pixels in, θ out: the UR5e twin's camera → tracker → arm node → driver, over DDS.

The shipped ``launch/params/ur5e.yaml`` graph with its twin: the UR5e model on the
ball-roll table (position control at 500 Hz), a camera rendering 320x240 frames of the
table and its ArUco marker, ``icpi-calibrate`` on one live frame, ``icpi-tracker-node``
turning frames into ball points — the only ball points the arm node gets — and the driver
running 3 ICPI iterations (the nearest-example sampler, no model). Each scored outcome
is the tracker's; the twin's true ball position (``ground_truth_topic``) is compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")
pytest.importorskip("cv2", reason="needs the ros extra: pip install -e '.[ros]'")

from rosgraph import DOMAIN, ROOT, NodeProcess, logs, new_namespace, ros_env

from icpi.robot.bags import read_trials
from icpi.robot.ros_common import follow_joint_trajectory
from icpi.robot.track import RestRule
from icpi.robot.tracker import Calibration

UR5E = ROOT / "launch" / "params" / "ur5e.yaml"
# Deterministic mode: the twin in lockstep with the arm node's grants (issue 24; a camera
# twin on one loaded core once froze it for good, fixed: the grant's lead never shrinks
# below its controller seconds).
LOCKSTEP = {"lockstep": "true"}
# The shipped UR5e parameters — limits, timing, rest rule, the controller's action (the
# default transport where control_msgs is built, as for a user) — but the wall-clock
# backstops: lockstep makes stamps and rest windows deterministic, not the wall time a
# loaded core takes. Measured on one core with three busy loops beside it: trials of
# 17-28 s wall, the motion 7.7-12.9 s of wall time (the shipped backstop: 3.2 + 3 + 3 s);
# the test 112 s (32 s on two cores).
ARM = {
    **LOCKSTEP,
    "use_sim_time": "true",
    "trajectory_lead": "0.15",
    "stop_lead": "0.15",
    "joint_state_timeout": "1.0",
    "ball_timeout": "1.0",
    "settle_timeout": "60.0",  # wall s
    "motion_timeout": "30.0",  # wall s
}
# Measured here (3 trials, 320x240): tracked vs true rest position 0.6-1.9 mm.
TOLERANCE = 0.004  # [m]


class GroundTruth:
    """Results and the twin's true ball position, on a context of its own."""

    def __init__(self) -> None:
        import os

        os.environ["ROS_DOMAIN_ID"] = DOMAIN
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        import rclpy
        from geometry_msgs.msg import PointStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, qos_profile_sensor_data
        from std_msgs.msg import String

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("truth", context=self.ctx)
        self.lock = threading.Lock()
        self.truth = None
        self.pairs: list[tuple[dict, np.ndarray | None]] = []
        every = QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=1000)
        self.node.create_subscription(
            PointStamped, "/ball_tracker/ground_truth", self._on_truth, qos_profile_sensor_data
        )
        self.node.create_subscription(String, "/icpi/trial_result", self._on_result, every)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self.ctx.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                return

    def _on_truth(self, msg) -> None:
        with self.lock:
            self.truth = np.array([msg.point.x, msg.point.y])

    def _on_result(self, msg) -> None:
        with self.lock:
            self.pairs.append((json.loads(msg.data), self.truth))

    def publishers(self, topic: str) -> list[str]:
        return [i.node_name for i in self.node.get_publishers_info_by_topic(topic)]

    def close(self) -> None:
        self.ctx.try_shutdown()
        self.thread.join(timeout=2)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_pixels_in_theta_out_on_the_ur5e_twin(tmp_path):
    ns = new_namespace()
    out = tmp_path / "run"
    procs: dict[str, NodeProcess] = {}
    truth = None

    def start(name, module, params):
        procs[name] = NodeProcess(module, ns, params, tmp_path / f"{name}.log", UR5E)

    try:
        start("sim", "sim_arm_node", LOCKSTEP)
        start("arm", "arm_node", ARM)  # grants the twin's clock: the camera starts
        transport = "action" if follow_joint_trajectory() is not None else "topic"
        truth = GroundTruth()
        # One live frame of the twin's camera → the calibration YAML.
        cal = tmp_path / "camera_calibration.yaml"
        calibrate = subprocess.run(
            [
                *(sys.executable, "-m", "icpi.robot.calibrate"),
                *("--image-topic", "/camera/image_raw", "--out", str(cal), "--timeout", "60"),
            ],
            env=ros_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert calibrate.returncode == 0, calibrate.stderr[-3000:] + logs(procs)
        position = Calibration.load(cal).position
        assert np.linalg.norm(position - [0.45, -0.5, 1.25]) < 0.015, position
        start("tracker", "tracker_node", {"calibration": str(cal), "use_sim_time": "true"})
        driver = {
            "sampler": "nearest",
            "run.iterations": "3",
            "run.dataset_size": "60",
            "out": str(out),
            "relabel_out": "''",
            "trial_timeout": "120.0",
            "exit_when_done": "true",
        }
        start("driver", "driver_node", driver)
        assert procs["driver"].wait(timeout=360) == 0, logs(procs)
        assert f"trajectories through the {transport}" in procs["arm"].text(), logs(procs)
        assert "moved the reference" not in procs["sim"].text(), logs(procs)
        # The arm node's only ball points are the tracker's: the twin publishes none.
        assert truth.publishers("/ball_tracker/point") == ["icpi_tracker"]
        time.sleep(0.5)
        with truth.lock:
            pairs = list(truth.pairs)
    finally:
        if truth is not None:
            truth.close()
        for p in procs.values():
            p.close()
    records = [json.loads(x) for x in open(out / "records.jsonl")]
    assert [r["iteration"] for r in records] == [0, 1, 2]
    scored = [(r, t) for r, t in pairs if r["status"] == "ok"]
    assert len(scored) == 3, pairs
    errors = []
    for result, true_xy in scored:
        assert true_xy is not None
        errors.append(float(np.linalg.norm(np.asarray(result["outcome"]) - true_xy)))
        assert result["outcome"] != [0.0, 0.0]
    print(f"tracked vs true rest position [mm]: {np.round(np.array(errors) * 1e3, 2).tolist()}")
    assert max(errors) < TOLERANCE, errors
    # The ball went somewhere: the outcomes are the strokes', not the start spot.
    assert all(np.linalg.norm(r["outcome"]) > 0.02 for r in records), records
    # Every trial recorded with its camera frames and the trajectories sent.
    trials = read_trials(out / "bags", RestRule(0.4, 0.004, 5), theta_dim=3)
    assert len(trials) == 3 and all(t.status == "ok" for t in trials)
    for t in trials:
        assert t.counts["image"] > 5 and t.counts["camera_info"] > 5, t.counts
        assert t.counts["trajectory"] >= 2 and t.counts["ball"] > 20, t.counts
