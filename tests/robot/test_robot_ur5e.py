"""Issue 19's "done": ICPI on the UR5e config over the live graph, through the action and the topic.

The UR5e twin (``launch/params/ur5e.yaml``: its limits, timing and θ box; the twin
publishing the ball itself, no camera), the arm node and the ICPI driver in their own
processes over DDS, in lockstep. The driver runs 3 ICPI iterations (the nearest-example
sampler: no model), with an e-stop in one trial and a watchdog abort (joint states cut) in
another; each stops the run and a restarted driver resumes it, as robot/README.md says.
Limits, checked between knots: what the controller executed, at every 2 ms physics
step, never asked the twin's drive for more than the UR5e's speed and acceleration
limits (+5 %); and every trajectory the arm node sent (its copy on
``icpi/sent_trajectory``, either transport) is within speed, acceleration and jerk along
its own knots, sampled every 2 ms, as the twin took it over: on arrival, from the
measured state (``jtc``, ``rosgraph.limit_violations``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")
pytest.importorskip("mink", reason="needs the ros extra: pip install -e '.[ros]'")

from rosgraph import (
    ROOT,
    NodeProcess,
    Probe,
    built_types,
    limit_violations,
    logs,
    new_namespace,
    takeovers,
)

UR5E = ROOT / "launch" / "params" / "ur5e.yaml"
ARM = yaml.safe_load(UR5E.read_text())["/**/icpi_arm"]["ros__parameters"]
# Every topic relative (under the test's namespace); the arm node's joint states come
# through the probe's relay, which the test cuts for the watchdog abort.
TOPICS = {
    "joint_state_topic": "joint_states",
    "trajectory_topic": "scaled_joint_trajectory_controller/joint_trajectory",
    "trajectory_action": "scaled_joint_trajectory_controller/follow_joint_trajectory",
    "ball_topic": "ball/point",
}
NODE_TOPICS = {
    "request_topic": "icpi/trial_request",
    "result_topic": "icpi/trial_result",
    "estop_topic": "icpi/estop",
    "state_topic": "icpi/arm_state",
    "sent_trajectory_topic": "icpi/sent_trajectory",
}
LOCKSTEP = {"lockstep": "true"}
# The controller the twin emulates: the UR5e's arm node plans for jtc (ur5e.yaml), the
# stock joint_trajectory_controller, which takes a new trajectory over on arrival from the
# measured state; the twin logs when (rosgraph.takeovers), for the oracle.
TWIN_MODEL = "jtc"
SIM = {
    **LOCKSTEP,
    **{k: TOPICS[k] for k in ("joint_state_topic", "trajectory_topic", "ball_topic")},
    "trajectory_action": TOPICS["trajectory_action"],
    "camera": "false",
    # The probe relays every joint state to the arm node (to cut them later): at 100 Hz
    # (not the driver's 500), and on a clock twice real time, so that the relay of a
    # loaded machine's probe may lag by 1.5 s of wall time before the watchdog (3 s of
    # the arm's clock) fires (4x and 2 s: fired at load 18).
    "time_scale": "2.0",
    "joint_state_rate": "100.0",
    # The twin's drive holds its command to the UR5e's speed and acceleration limits
    # (+5 %) and logs "drive limited" on any 2 ms step where the controller asked more.
    "controller_model": TWIN_MODEL,
    "velocity_limits": str([round(1.05 * v, 6) for v in ARM["velocity_limits"]]),
    "acceleration_limits": str([round(1.05 * a, 6) for a in ARM["acceleration_limits"]]),
}
DRIVER = {
    "sampler": "nearest",
    "run.iterations": "3",
    "run.dataset_size": "60",
    "trial_timeout": "120.0",
    "exit_when_done": "true",
    "record_bags": "false",
    "relabel_out": "''",
    "request_topic": "icpi/trial_request",
    "result_topic": "icpi/trial_result",
    "arm_state_topic": "icpi/arm_state",
    "progress_topic": "icpi/progress",
    "summary_topic": "icpi/summary",
}


def arm_params(transport: str) -> dict[str, str]:
    return {
        **LOCKSTEP,
        "use_sim_time": "true",
        **TOPICS,
        **NODE_TOPICS,
        "joint_state_topic": "relay/joint_states",
        "trajectory_transport": transport,
        "trajectory_lead": "0.15",  # wall s
        "stop_lead": "0.15",
        "joint_state_timeout": "3.0",  # simulated s, judged on stamps (1.5 s wall)
        "ball_timeout": "1.0",
    }


def needs_transport(transport: str) -> None:
    if transport == "action":
        built_types("control_msgs.action")


def moved(probe, home, by=0.05) -> bool:
    return bool(np.max(np.abs(np.array(probe.joint_states[-1][1]) - home)) > by)


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.parametrize("transport", ["action", "topic"])
def test_three_icpi_iterations_on_the_ur5e_with_an_estop_and_a_watchdog_abort(tmp_path, transport):
    from std_msgs.msg import Bool
    from trajectory_msgs.msg import JointTrajectory

    needs_transport(transport)
    ns = new_namespace()
    out = tmp_path / "run"
    procs: dict[str, NodeProcess] = {}
    probe = None

    def driver(k: int) -> NodeProcess:
        procs[f"driver{k}"] = NodeProcess(
            "driver_node", ns, {**DRIVER, "out": str(out)}, tmp_path / f"driver{k}.log", UR5E
        )
        return procs[f"driver{k}"]

    try:
        procs["sim"] = NodeProcess("sim_arm_node", ns, SIM, tmp_path / "sim.log", UR5E)
        procs["arm"] = NodeProcess(
            "arm_node", ns, arm_params(transport), tmp_path / "arm.log", UR5E
        )
        probe = Probe(ns)
        sent: list[JointTrajectory] = []
        probe.node.create_subscription(
            JointTrajectory, "icpi/sent_trajectory", lambda m: sent.append(m), 100
        )
        probe.wait_matched()
        home = np.array(probe.joint_states[-1][1])
        assert f"trajectories through the {transport}" in procs["arm"].text(), logs(procs)
        # --- run 1: the first rollout scores; the e-stop lands in the second one's motion
        first = driver(1)
        probe.wait_for(lambda: len(probe.progress) >= 1, 120, "the first rollout")
        n_sent = len(sent)
        probe.wait_for(lambda: len(sent) > n_sent and moved(probe, home), 60, "a second motion")
        probe.estop_pub.publish(Bool(data=True))
        assert first.wait(timeout=60) == 2, logs(procs)
        assert probe.call_trigger(f"{ns}/icpi_arm/clear_estop").success
        # --- run 2 resumes; its first trial loses its joint states mid-motion
        probe.wait_for(lambda: probe.arm_state == "idle", 30, "the arm node to be idle")
        second = driver(2)
        n_sent = len(sent)
        probe.wait_for(lambda: len(sent) > n_sent and moved(probe, home), 60, "a motion")
        with probe.lock:
            probe.relay_on = False
        assert second.wait(timeout=60) == 2, logs(procs)
        with probe.lock:
            probe.relay_on = True
        # --- run 3 resumes and finishes the 3 iterations
        probe.wait_for(lambda: probe.arm_state == "idle", 30, "the arm node to be idle")
        assert driver(3).wait(timeout=180) == 0, logs(procs)
        with probe.lock:
            results = list(probe.results)
            trajs = list(sent)
        assert procs["arm"].alive() and procs["sim"].alive(), logs(procs)
        # What the controller executed, every 2 ms, under jtc: within speed and acceleration.
        assert "drive limited" not in procs["sim"].text(), logs(procs)
        # Every stop, arriving in its lead, went on along the running curve (jtc).
        assert "moved the reference" not in procs["sim"].text(), logs(procs)
        taken = takeovers(procs["sim"].text())
    finally:
        if probe is not None:
            probe.close()
        for p in procs.values():
            p.close()
    records = [json.loads(x) for x in open(out / "records.jsonl")]
    assert [r["iteration"] for r in records] == [0, 1, 2]
    box = np.asarray(
        yaml.safe_load(UR5E.read_text())["/**/icpi_driver"]["ros__parameters"]["theta_box"]
    )
    for r in records:  # every θ inside the UR5e's box; the run started at its centre
        assert np.all(box[:3] - 1e-9 <= r["theta"]) and np.all(
            np.asarray(r["theta"]) <= box[3:] + 1e-9
        )
    np.testing.assert_allclose(records[0]["theta"], 0.5 * (box[:3] + box[3:]))
    statuses = [r["status"] for r in results]
    assert statuses.count("estopped") == 1 and statuses.count("ok") == 3, results
    aborted = [r for r in results if r["status"] == "aborted"]
    assert len(aborted) == 1 and "joint_states" in aborted[0]["reason"], aborted
    assert "refused" not in statuses, results
    bad = limit_violations(
        trajs,
        ARM["joint_names"],
        home,
        ARM["velocity_limits"],
        ARM["acceleration_limits"],
        ARM["jerk_limits"],
        taken=taken,
    )
    assert bad == [], bad
