"""UR5e and Panda runs start, and stay, inside the θ box each arm executes (issue 19, item 2).

The "arm" here is the arm node's own decision — the trial planned from home and checked
against the YAML's limits (``plan_trial`` + ``Limits.check_plan``, what ``SkillRunner``
refuses on) — in front of the in-process MuJoCo rollout, so every refusal below is one the
real node would make. No ROS: the driver's side is :class:`ArmTask` and ``run_method``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("mink", reason="needs the ros extra: pip install -e '.[ros]'")

from icpi.envs import make_task
from icpi.robot.adapter import ArmTask, TrialFailed
from icpi.robot.contract import TrialResult
from icpi.robot.skill import State, Unreachable, plan_trial
from icpi.robot.theta_box import arm_config

PARAMS = Path(__file__).resolve().parents[2] / "launch" / "params"


def driver_params(name: str) -> dict:
    doc = yaml.safe_load((PARAMS / name).read_text())
    return doc["/**/icpi_driver"]["ros__parameters"]


class CheckingArm:
    """Refuses what the arm node would refuse for this params YAML, else rolls out."""

    def __init__(self, params: str, refuse=None):
        self.cfg = arm_config(PARAMS / params)
        self.arm, self.limits, self.timing = self.cfg.arm(), self.cfg.limits(), self.cfg.timing()
        self.task = make_task("ball-roll-gc")
        self.extra_refusal = refuse
        self.requests = []

    def why_refused(self, theta) -> list[str]:
        if self.extra_refusal is not None and self.extra_refusal(theta):
            return ["scripted refusal"]
        try:
            plan = plan_trial(
                self.cfg.skill, theta, self.arm, State.at_rest(self.cfg.home), self.timing
            )
        except Unreachable as err:
            return [f"unreachable: {err}"]
        return self.limits.check_plan(self.arm, plan)

    def request(self, req, timeout):
        self.requests.append(req)
        why = self.why_refused(req.theta)
        if why:
            return TrialResult(req.trial_id, "refused", "trajectory violates limits: " + why[0])
        r = self.task.rollout(self.task.make_instance(goal=req.goal), req.theta)
        return TrialResult(
            req.trial_id,
            "ok",
            theta=list(req.theta),
            goal=list(req.goal),
            outcome=r.outcome.tolist(),
            e=r.e.tolist(),
            cost=r.cost,
            track=[[0.0, *r.trajectory[-1].tolist()]],
        )


@pytest.mark.parametrize("params", ["ur5e.yaml", "panda.yaml", "hardware.yaml", "sim_arm.yaml"])
def test_the_shipped_theta_box_is_executable_at_its_centre_and_corners(params):
    """The YAML's theta_box is what the arm node accepts (recompute it when limits change)."""
    box = np.asarray(driver_params(params)["theta_box"])
    low, high = box[:3], box[3:]
    arm = CheckingArm(params)
    corners = [np.where([i & 1, i & 2, i & 4], high, low) for i in range(8)]
    for theta in [0.5 * (low + high), *corners]:
        assert arm.why_refused(theta) == [], (params, theta.tolist())
    # ...and the task's own centre, the old start, is not (for the Panda and the planar
    # Franka-class arm; the UR5e, beside the ball, executes it).
    if params in ("panda.yaml", "hardware.yaml"):
        spec = make_task("ball-roll-gc").theta_spec
        assert arm.why_refused(0.5 * (spec.low_array + spec.high_array)), params


def test_a_ur5e_run_starts_at_the_box_centre_and_every_proposal_is_clipped_into_it(tmp_path):
    from icpi.core import ScriptedSampler
    from icpi.core.samplers import copy_nearest_example
    from icpi.manipulation.run import RunConfig, run_method

    box = driver_params("ur5e.yaml")["theta_box"]
    arm = CheckingArm("ur5e.yaml")
    task = ArmTask(
        "ball-roll-gc", arm, goal=(0.7, 0.0), trust_region=[0.2, 0.03, 0.1], theta_box=box
    )
    cfg = RunConfig(task="ball-roll-gc", method="icpi", seed=0, iterations=4, dataset_size=60)
    run_method(
        cfg,
        tmp_path / "run",
        sampler=ScriptedSampler(copy_nearest_example),
        task=task,
        instance=task.instance,
        theta0=task.start_theta,
    )
    records = [json.loads(x) for x in open(tmp_path / "run" / "records.jsonl")]
    assert len(records) == 4
    np.testing.assert_allclose(records[0]["theta"], task.centre)
    low, high = np.asarray(box[:3]), np.asarray(box[3:])
    for r in records:
        assert np.all(low - 1e-12 <= r["theta"]) and np.all(np.asarray(r["theta"]) <= high + 1e-12)
    # No request was refused: the box is what the UR5e executes.
    assert [arm.why_refused(q.theta) for q in arm.requests] == [[]] * len(arm.requests)
    # A proposal far outside (the fastest strike) is clipped into the box, flagged.
    r = task.rollout(task.instance, [0.5, 0.12, 0.12])
    assert r.clipped and np.all(r.theta <= high) and np.all(r.theta >= low)


def test_a_refused_theta_backs_off_towards_the_last_one_executed():
    """Without a box (the task's bounds) a fast proposal is refused, then backed off."""
    arm = CheckingArm("ur5e.yaml")
    centre = np.asarray([0.0, 0.07, 0.4367])
    task = ArmTask("ball-roll-gc", arm, goal=(0.7, 0.0), start_theta=centre, max_refusals=6)
    first = task.rollout(task.instance, task.start_theta)
    assert not first.clipped and "refusals" not in first.info
    proposal = np.asarray([0.5, 0.12, 0.12])  # refused, and halfway back too
    r = task.rollout(task.instance, proposal)
    refusals = r.info["refusals"]
    assert 2 <= len(refusals) <= 6 and r.clipped
    for k, refusal in enumerate(refusals):  # each halfway back, each refused by the check
        expected = centre + 0.5**k * (proposal - centre)
        np.testing.assert_allclose(refusal["theta"], expected)
        assert arm.why_refused(refusal["theta"])
    np.testing.assert_allclose(r.theta, centre + 0.5 ** len(refusals) * (proposal - centre))
    assert arm.why_refused(r.theta) == []


def test_a_start_theta_the_arm_refuses_falls_back_towards_the_box_centre():
    box = driver_params("ur5e.yaml")["theta_box"]
    arm = CheckingArm("ur5e.yaml", refuse=lambda th: th[1] > 0.09)  # a stricter arm
    start = [0.0, 0.11, 0.44]
    task = ArmTask("ball-roll-gc", arm, goal=(0.7, 0.0), theta_box=box, start_theta=start)
    r = task.rollout(task.instance, task.start_theta)
    assert r.theta[1] <= 0.09 and len(r.info["refusals"]) >= 1
    # The centre itself refused: nothing to back off to; the message says what to fix.
    stubborn = CheckingArm("ur5e.yaml", refuse=lambda th: True)
    task = ArmTask("ball-roll-gc", stubborn, goal=(0.7, 0.0), theta_box=box)
    with pytest.raises(TrialFailed, match="recompute theta_box"):
        task.rollout(task.instance, task.start_theta)
    assert len(stubborn.requests) == 1


def test_a_malformed_box_or_start_is_refused_at_once():
    arm = CheckingArm("ur5e.yaml")
    with pytest.raises(ValueError, match="theta_box needs 6"):
        ArmTask("ball-roll-gc", arm, goal=(0.7, 0.0), theta_box=[0.0, 0.1])
    with pytest.raises(ValueError, match="inside the task's bounds"):
        ArmTask("ball-roll-gc", arm, goal=(0.7, 0.0), theta_box=[-1, 0.02, 0.2, 1, 0.05, 0.5])
    with pytest.raises(ValueError, match="start_theta"):
        ArmTask(
            "ball-roll-gc",
            arm,
            goal=(0.7, 0.0),
            theta_box=[-0.6, 0.02, 0.4367, 0.6, 0.0366, 0.5],
            start_theta=[0.0, 0.07, 0.31],
        )
