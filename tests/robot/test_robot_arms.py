"""Serial arms (UR5e, Panda) from their models: IK, trial plans within the data-sheet limits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mink", reason="needs the ros extra: pip install -e '.[ros]'")

from icpi.envs import make_task
from icpi.robot.params import SkillNodeConfig
from icpi.robot.skill import State, Unreachable, plan_trial
from icpi.robot.theta_box import arm_config, largest_box
from icpi.robot.theta_box import main as theta_box_main

PARAMS = Path(__file__).resolve().parents[2] / "launch" / "params"
ARMS = ["ur5e", "panda"]
# Inside the θ box computed for both arms (robot/README.md), and a fast strike outside it.
SLOW, FAST = (0.3, 0.03, 0.48), (0.0, 0.12, 0.12)


@pytest.fixture(scope="module", params=ARMS)
def cfg(request) -> SkillNodeConfig:
    return arm_config(PARAMS / f"{request.param}.yaml")


def test_ik_holds_height_and_orientation_and_inverts_fk(cfg):
    arm = cfg.arm()
    assert arm.n_joints == len(cfg.joint_names) in (6, 7)
    home = np.asarray(cfg.home)
    np.testing.assert_allclose(arm.fk_xyz(home), [-0.25, 0.0, 0.03], atol=1e-5)
    xy = np.random.default_rng(0).uniform(
        [-0.17, -0.1], [0.07, 0.1], size=(20, 2)
    )  # where strokes go
    q = arm.ik(xy, seed=home)
    np.testing.assert_allclose(arm.fk_xyz(q), np.column_stack([xy, np.full(20, 0.03)]), atol=1e-5)
    lo, hi = arm.position_range
    assert np.all(q >= lo - 1e-9) and np.all(q <= hi + 1e-9)
    with pytest.raises(Unreachable, match="no IK solution"):
        arm.ik(np.array([1.5, 0.0]), seed=home)  # beyond the reach


def test_trials_within_the_data_sheet_limits_or_refused_with_the_reason(cfg):
    arm, limits, timing = cfg.arm(), cfg.limits(), cfg.timing()
    home = State.at_rest(cfg.home)
    plan = plan_trial(cfg.skill, SLOW, arm, home, timing)
    assert plan.positions.shape[1] == len(cfg.joint_names)  # every joint in each point
    assert limits.check_plan(arm, plan) == []
    # The stroke is the task's own (Task.stroke), at the effector height, on one IK branch.
    stroke = make_task(cfg.skill).stroke(np.asarray(SLOW))
    dt = timing.sample_dt
    n = round(stroke.duration / dt) + 1
    _, ref = stroke.reference(n, dt)
    t = plan.stroke_start + dt * np.arange(n)
    np.testing.assert_allclose(arm.fk_xyz(plan.curve(t))[:, :2], ref, atol=1e-5)
    np.testing.assert_allclose(arm.fk_xyz(plan.curve(t))[:, 2], 0.03, atol=1e-5)
    fast = plan_trial(cfg.skill, FAST, arm, home, timing)
    why = limits.check_plan(arm, fast)
    assert why and any("speed" in w or "acceleration" in w for w in why), why


def test_theta_box_script_prints_an_executable_box(capsys):
    ok = np.zeros((3, 3, 3), dtype=bool)
    ok[:, :2, 1:] = True
    ok[0, 2, 2] = True
    assert largest_box(ok) == ((0, 2), (0, 1), (1, 2))
    assert theta_box_main([str(PARAMS / "ur5e.yaml"), "--grid", "2"]) == 0
    out = capsys.readouterr().out
    assert "of 8 θ on a 2^3 grid pass" in out and "theta_box:" in out


def test_planar_models_still_need_two_joints_and_serial_any():
    with pytest.raises(ValueError, match="2 values"):
        SkillNodeConfig(joint_names=["a", "b", "c"], home=[0.0, 0.0, 0.0]).arm()
    with pytest.raises(ValueError, match="home needs 6"):
        SkillNodeConfig(
            kinematics="serial", model="ur5e", joint_names=list("abcdef"), home=[0.0]
        ).arm()
    with pytest.raises(FileNotFoundError, match="ur5e"):
        SkillNodeConfig(kinematics="serial", model="nope", joint_names=["a"], home=[0.0]).arm()
    assert math.isinf(SkillNodeConfig().limits().min_height) is False  # shipped -1 m
