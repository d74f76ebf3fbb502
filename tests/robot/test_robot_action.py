"""Trials through control_msgs/FollowJointTrajectory: the arm node's client, the twin's server.

Live graph over real DDS (the twin and the arm node in their own processes), as the topic
tests in test_robot_graph.py and test_robot_safety.py, with ``trajectory_transport:
action``. The probe records the copy of every trajectory the arm node sends
(``icpi/sent_trajectory``) and checks it with its controller model. Needs control_msgs
built into the venv (``make ros-types``; CI builds it, and fails here without it).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")

from rosgraph import Probe, built_types, limit_violations, logs, new_namespace, start_graph

JOINTS = ["shoulder", "elbow"]
VMAX, AMAX, JMAX = [4.0, 4.0], [40.0, 40.0], [1500.0, 1500.0]
LIMITS = {
    "velocity_limits": str(VMAX),
    "acceleration_limits": str(AMAX),
    "jerk_limits": str(JMAX),
}
THETA = (0.1, 0.06, 0.3)
ACTION = {"trajectory_transport": "action"}


@pytest.fixture(autouse=True)
def _needs_control_msgs():
    built_types("control_msgs.action")


def start(tmp_path, ns, sim=None, arm=None):
    """The twin and the arm node in lockstep (rosgraph.start_graph), through the action."""
    return start_graph(tmp_path, ns, sim=sim, arm={**ACTION, **(arm or {})})


def sent_trajectories(probe):
    """Subscribe the probe to the arm node's copy of what it sends; returns the list."""
    from trajectory_msgs.msg import JointTrajectory

    sent = []
    probe.node.create_subscription(
        JointTrajectory, "icpi/sent_trajectory", lambda m: sent.append(m), 10
    )
    return sent


def close_all(procs, probe):
    if probe is not None:
        probe.close()
    for p in procs.values():
        p.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_trials_and_an_estop_through_the_action_stay_within_limits(tmp_path):
    """A trial through the action scores; an e-stop mid-motion preempts the goal with a stop."""
    from std_msgs.msg import Bool

    ns = new_namespace()
    procs, probe = {}, None
    try:
        procs = start(
            tmp_path, ns, sim={"time_scale": "1.0"}, arm={**LIMITS, "approach_duration": "2.0"}
        )
        probe = Probe(ns)
        sent = sent_trajectories(probe)
        probe.wait_matched()
        assert "trajectories through the action" in procs["arm"].text(), logs(procs)
        home = np.array(probe.joint_states[-1][1])
        probe.request(1, THETA)
        res = probe.result(1, 40)
        assert res["status"] == "ok", (res, logs(procs))
        assert probe.trajectories == [], "the action path also published on the topic"
        # --- e-stop mid-approach: the stop preempts the trial's goal (the twin says so)
        probe.request(2, (0.0, 0.05, 0.35))
        probe.wait_for(lambda: len(sent) >= 3, 20, "the second trial's trajectory", procs)
        probe.wait_for(
            lambda: np.max(np.abs(np.array(probe.joint_states[-1][1]) - home)) > 0.05,
            20,
            "the arm to move",
            procs,
        )
        probe.estop_pub.publish(Bool(data=True))
        res = probe.result(2, 15)
        assert res["status"] == "estopped", res
        probe.wait_for(
            lambda: "goal preempted" in procs["sim"].text(), 10, "the twin to preempt the goal"
        )
        probe.wait_for(
            lambda: (
                len(probe.joint_velocities) > 20
                and max(abs(v) for row in probe.joint_velocities[-20:] for v in row) < 1e-3
            ),
            20,
            "the twin to stop",
        )
        q_rest = np.array(probe.joint_states[-1][1])
        assert np.max(np.abs(q_rest - home)) > 0.01, "the e-stop came too late to test anything"
        with probe.lock:
            trajs = list(sent)
        bad = limit_violations(trajs, JOINTS, home, VMAX, AMAX, JMAX)
        assert bad == [], bad
        # --- at rest, a second e-stop cancels what still runs; then clear and go on
        assert probe.call_trigger(f"{ns}/icpi_arm/estop").success
        assert probe.call_trigger(f"{ns}/icpi_arm/clear_estop").success
        probe.wait_for(lambda: probe.arm_state == "idle", 10, "the arm node to be idle")
        probe.request(3, THETA)
        res = probe.result(3, 40)
        assert res["status"] == "ok", (res, logs(procs))
        assert procs["arm"].alive() and procs["sim"].alive(), logs(procs)
    finally:
        close_all(procs, probe)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_controller_faults_end_the_trial_with_the_controllers_reason(tmp_path):
    """No server, a path tolerance violation and a silent controller: aborted, with why."""
    ns = new_namespace()
    procs, probe = {}, None
    try:
        # A path tolerance no real motion keeps (the twin's actuators lag by more).
        procs = start(tmp_path, ns, arm={"path_tolerance": "0.000001"})
        probe = Probe(ns)
        probe.wait_matched()
        probe.request(1, THETA)
        res = probe.result(1, 30)
        assert res["status"] == "aborted", res
        assert "PATH_TOLERANCE_VIOLATED" in res["reason"], res
        assert procs["arm"].alive() and procs["sim"].alive(), logs(procs)
    finally:
        close_all(procs, probe)
    ns = new_namespace()
    procs, probe = {}, None
    try:
        # A controller that goes silent mid-motion (its process stopped): the feedback
        # watchdog (0.3 s of the steady clock) trips; the joint states' (stamps on the
        # twin's clock, frozen with it in lockstep) cannot.
        procs = start(
            tmp_path,
            ns,
            sim={"time_scale": "1.0"},
            arm={
                "feedback_timeout": "0.3",
                "joint_state_timeout": "2.0",
                "approach_duration": "2.0",
            },
        )
        probe = Probe(ns)
        probe.wait_matched()
        home = np.array(probe.joint_states[-1][1])
        probe.request(1, THETA)
        probe.wait_for(
            lambda: np.max(np.abs(np.array(probe.joint_states[-1][1]) - home)) > 0.05,
            20,
            "the arm to move",
        )
        os.kill(procs["sim"].proc.pid, signal.SIGSTOP)
        try:
            res = probe.result(1, 15)
        finally:
            os.kill(procs["sim"].proc.pid, signal.SIGCONT)
        assert res["status"] == "aborted" and "no feedback" in res["reason"], res
        assert procs["arm"].alive(), logs(procs)
    finally:
        close_all(procs, probe)
    ns = new_namespace()
    procs, probe = {}, None
    try:
        # No action server under that name: the arm node says so on icpi/arm_state (the
        # driver waits), and a request all the same is aborted at once, nothing moves.
        procs = start(tmp_path, ns, arm={"trajectory_action": "nobody/follow_joint_trajectory"})
        probe = Probe(ns)
        probe.wait_for(lambda: len(probe.joint_states) > 5, 45, "joint states")
        probe.wait_for(lambda: probe.arm_state == "no_controller", 45, "no_controller")
        time.sleep(0.3)  # and it stays so
        assert probe.arm_state == "no_controller"
        home = np.array(probe.joint_states[-1][1])
        probe.request(1, THETA)
        res = probe.result(1, 20)
        assert res["status"] == "aborted" and "no action server" in res["reason"], res
        time.sleep(0.3)
        assert np.max(np.abs(np.array(probe.joint_states[-1][1]) - home)) < 1e-6
    finally:
        close_all(procs, probe)
