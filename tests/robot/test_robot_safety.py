"""Every trajectory the arm node publishes stays within limits, across aborts and e-stops.

Live graph: the twin and the arm node in their own processes over real DDS. The probe
relays the twin's joint states to the arm node (``relay/joint_states``) so that a test can
cut them off while the twin goes on moving; it records every trajectory the controller
receives and checks them with its own controller model (:func:`limit_violations`).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")

from rosgraph import FAST_ARM, NodeProcess, Probe, limit_violations, new_namespace

JOINTS = ["shoulder", "elbow"]
# Limits of these tests: the trial θ below needs about 2.6 rad/s, 27 rad/s², 900 rad/s³.
VMAX, AMAX, JMAX = [4.0, 4.0], [40.0, 40.0], [1500.0, 1500.0]
LIMITS = {
    "velocity_limits": str(VMAX),
    "acceleration_limits": str(AMAX),
    "jerk_limits": str(JMAX),
}
THETA = (0.1, 0.06, 0.3)


def logs(procs):
    return "\n".join(f"--- {k}\n{p.text()[-3000:]}" for k, p in procs.items())


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_watchdog_abort_mid_motion_stops_within_limits(tmp_path):
    """The snap of issue 15: joint states cut mid-approach, the arm node aborts and stops."""
    ns = new_namespace()
    sim = {"time_scale": "1.0", "camera_noise": "0.0", "camera_dropout": "0.0"}
    arm = {
        **FAST_ARM,
        **LIMITS,
        "approach_duration": "2.0",
        "joint_state_timeout": "0.5",
        "joint_state_topic": "relay/joint_states",
    }
    procs, probe = {}, None
    try:
        procs["sim"] = NodeProcess("sim_arm_node", ns, sim, tmp_path / "sim.log")
        procs["arm"] = NodeProcess("arm_node", ns, arm, tmp_path / "arm.log")
        probe = Probe(ns)
        probe.wait_matched()
        home = np.array(probe.joint_states[-1][1])
        probe.request(1, THETA)
        # A third of the way into the approach: the joint states stop reaching the arm node.
        probe.wait_for(
            lambda: np.max(np.abs(np.array(probe.joint_states[-1][1]) - home)) > 0.1,
            20,
            "the arm to move",
        )
        with probe.lock:
            probe.relay_on = False
        res = probe.result(1, 15)
        assert res["status"] == "aborted" and "joint_states" in res["reason"], res
        # The twin comes to rest (the stop, or the rest of the trajectory, is over).
        probe.wait_for(
            lambda: (
                len(probe.joint_velocities) > 20
                and max(abs(v) for row in probe.joint_velocities[-20:] for v in row) < 1e-3
            ),
            20,
            "the twin to stop",
        )
        with probe.lock:
            trajs = list(probe.trajectories)
            speeds = np.abs(np.array(probe.joint_velocities))
        assert len(trajs) >= 2, "no stop was sent after the abort"
        bad = limit_violations(trajs, JOINTS, VMAX, AMAX, JMAX)
        assert bad == [], bad
        # The twin's own motion (stiff position control) stayed within the speed limit.
        assert np.all(speeds.max(axis=0) <= 1.1 * np.asarray(VMAX)), speeds.max(axis=0)
        assert procs["arm"].alive() and procs["sim"].alive(), logs(procs)
        assert "late trajectory" not in procs["sim"].text()
    finally:
        if probe is not None:
            probe.close()
        for p in procs.values():
            p.close()
