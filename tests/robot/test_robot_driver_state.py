"""What the arm's driver says about the robot, over DDS: a UR's robot and safety modes and a
Franka's robot state (issue 19, item 4), in the types ``make ros-types`` builds from the
drivers' own message files (``vendor/ur_dashboard_msgs``, ``vendor/franka_msgs``).

The planar twin in lockstep stands in for the arm; a probe plays ur_robot_driver's
io_and_status_controller (modes transient local, on change) and
franka_robot_state_broadcaster (the robot state at 200 Hz).
"""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")

from rosgraph import (
    NodeProcess,
    Probe,
    built_types,
    limit_violations,
    logs,
    new_namespace,
    start_graph,
)

THETA = (0.1, 0.06, 0.3)
JOINTS = ["shoulder", "elbow"]
VMAX, AMAX, JMAX = [15.0, 15.0], [300.0, 300.0], [30000.0, 30000.0]  # sim_arm.yaml's


def driver_types():
    robot_mode, safety_mode = built_types("ur_dashboard_msgs.msg", "RobotMode", "SafetyMode")
    (franka_state,) = built_types("franka_msgs.msg", "FrankaRobotState")
    return robot_mode, safety_mode, franka_state


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_protective_stop_or_a_reflex_refuses_and_aborts_trials(tmp_path):
    from trajectory_msgs.msg import JointTrajectory

    from icpi.robot.driver_node import LATCHED  # the arm node's modes: transient local

    RobotMode, SafetyMode, FrankaRobotState = driver_types()
    ns = new_namespace()
    topics = {
        "robot_mode_topic": "io_and_status_controller/robot_mode",
        "safety_mode_topic": "io_and_status_controller/safety_mode",
        "franka_state_topic": "franka_robot_state_broadcaster/robot_state",
    }
    procs, probe = {}, None
    try:
        procs = start_graph(tmp_path, ns, arm={**topics, "approach_duration": "3.0"})
        probe = Probe(ns)
        n = probe.node
        robot_mode = n.create_publisher(RobotMode, topics["robot_mode_topic"], LATCHED)
        safety_mode = n.create_publisher(SafetyMode, topics["safety_mode_topic"], LATCHED)
        franka = n.create_publisher(FrankaRobotState, topics["franka_state_topic"], 10)
        state = FrankaRobotState(robot_mode=FrankaRobotState.ROBOT_MODE_MOVE)
        publishing = {"franka": False}
        n.create_timer(0.005, lambda: publishing["franka"] and franka.publish(state))
        sent: list[JointTrajectory] = []
        n.create_subscription(JointTrajectory, "icpi/sent_trajectory", sent.append, 100)
        probe.wait_matched(ready=("arm_fault",))  # nothing heard from the arm's driver yet
        home = np.array(probe.joint_states[-1][1])

        ids = itertools.count(1)

        def trial(timeout=60):
            tid = next(ids)
            probe.request(tid, THETA)
            return probe.result(tid, timeout)

        def once_heard(wanted, before):
            """Trials until one is ``wanted``: the arm node has heard what was published.

            Modes come on their own topics, so a request may overtake them; until then
            every trial must be refused with a reason of ``before`` (what was true
            earlier). Refused trials move nothing.
            """
            deadline = time.monotonic() + 30
            while True:
                res = trial()
                if wanted(res):
                    return res
                assert res["status"] == "refused", res
                assert any(w in res["reason"] for w in before), res
                assert time.monotonic() < deadline, res
                time.sleep(0.1)

        def moving():
            return np.max(np.abs(np.array(probe.joint_states[-1][1]) - home)) > 0.02

        def mid_motion_abort(fault):
            """A trial from home, ``fault()`` once it moves; its result, a stop sent."""
            tid = next(ids)
            with probe.lock:
                n_sent = len(sent)
            probe.request(tid, THETA)
            probe.wait_for(moving, 30, "the arm to move")
            fault()
            res = probe.result(tid, 60)
            # (The copies come on their own topic: they may follow the result.)
            probe.wait_for(lambda: len(sent) >= n_sent + 2, 10, "the trial's trajectory and a stop")
            return res

        unheard = ["no UR robot mode", "no UR safety mode", "no Franka robot mode"]
        # Nothing heard from the driver: refused, naming what is missing.
        res = trial()
        assert res["status"] == "refused" and "no UR robot mode received" in res["reason"], res
        robot_mode.publish(RobotMode(mode=RobotMode.RUNNING))
        safety_mode.publish(SafetyMode(mode=SafetyMode.PROTECTIVE_STOP))
        publishing["franka"] = True
        res = once_heard(lambda r: "PROTECTIVE_STOP" in r["reason"], unheard)
        assert res["status"] == "refused", res
        assert "UR safety mode is PROTECTIVE_STOP, not NORMAL" in res["reason"], res
        assert sent == []  # nothing moved
        probe.wait_for(lambda: probe.arm_state == "arm_fault", 10, "arm_state arm_fault")
        safety_mode.publish(SafetyMode(mode=SafetyMode.NORMAL))
        once_heard(lambda r: r["status"] == "ok", ["PROTECTIVE_STOP"])
        probe.wait_for(lambda: probe.arm_state == "idle", 10, "arm_state idle")
        # A protective stop while the arm moves: a stop sent, the trial aborted.
        res = mid_motion_abort(
            lambda: safety_mode.publish(SafetyMode(mode=SafetyMode.PROTECTIVE_STOP))
        )
        assert res["status"] == "aborted" and "PROTECTIVE_STOP" in res["reason"], res
        safety_mode.publish(SafetyMode(mode=SafetyMode.NORMAL))
        once_heard(lambda r: r["status"] == "ok", ["PROTECTIVE_STOP"])

        # A Franka reflex while the arm moves: the same.
        def reflex():
            state.robot_mode = FrankaRobotState.ROBOT_MODE_REFLEX

        res = mid_motion_abort(reflex)
        assert res["status"] == "aborted", res
        assert "Franka robot mode is REFLEX, not MOVE" in res["reason"], res
        res = trial()
        assert res["status"] == "refused" and "REFLEX" in res["reason"], res
        with probe.lock:
            trajs = list(sent)
        assert limit_violations(trajs, JOINTS, home, VMAX, AMAX, JMAX) == []
        assert procs["arm"].alive(), logs(procs)
    finally:
        if probe is not None:
            probe.close()
        for p in procs.values():
            p.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_driver_waits_through_a_protective_stop_instead_of_spending_a_trial(tmp_path):
    """``arm_fault`` on icpi/arm_state holds the driver's requests back until it clears.

    Before, the arm node read ``idle`` in a protective stop: the driver sent its trial, the
    arm refused it, and the driver backed θ off towards its anchor for nothing.
    """
    from icpi.robot.driver_node import LATCHED  # the arm node's modes: transient local

    RobotMode, SafetyMode, _ = driver_types()
    ns = new_namespace()
    topics = {
        "robot_mode_topic": "io_and_status_controller/robot_mode",
        "safety_mode_topic": "io_and_status_controller/safety_mode",
    }
    out = tmp_path / "run"
    driver = {
        "sampler": "nearest",
        "run.iterations": "2",
        "run.dataset_size": "60",
        "out": str(out),
        "relabel_out": str(tmp_path / "relabelled"),
        "trial_timeout": "60.0",
    }
    procs, probe = {}, None
    try:
        procs = start_graph(tmp_path, ns, arm=topics)
        probe = Probe(ns)
        robot_mode = probe.node.create_publisher(RobotMode, topics["robot_mode_topic"], LATCHED)
        safety_mode = probe.node.create_publisher(SafetyMode, topics["safety_mode_topic"], LATCHED)
        robot_mode.publish(RobotMode(mode=RobotMode.RUNNING))
        safety_mode.publish(SafetyMode(mode=SafetyMode.PROTECTIVE_STOP))
        probe.wait_matched(ready=("arm_fault",))  # the protective stop, or nothing heard yet
        time.sleep(1.0)
        assert probe.arm_state == "arm_fault"
        procs["driver"] = NodeProcess("driver_node", ns, driver, tmp_path / "driver.log")
        deadline = time.monotonic() + 90
        while "waits for the arm skill node (state 'arm_fault')" not in procs["driver"].text():
            assert time.monotonic() < deadline and procs["driver"].alive(), logs(procs)
            time.sleep(0.1)
        time.sleep(2.0)
        with probe.lock:
            assert probe.results == [], probe.results  # no trial was sent to be refused
        safety_mode.publish(SafetyMode(mode=SafetyMode.NORMAL))
        assert procs["driver"].wait(timeout=120) == 0, logs(procs)
        records = [json.loads(x) for x in open(out / "records.jsonl")]
        assert [r["iteration"] for r in records] == [0, 1]
        with probe.lock:
            assert [r["status"] for r in probe.results] == ["ok", "ok"], probe.results
        assert "trials wait: UR safety mode is PROTECTIVE_STOP" in procs["arm"].text()
    finally:
        if probe is not None:
            probe.close()
        for p in procs.values():
            p.close()
