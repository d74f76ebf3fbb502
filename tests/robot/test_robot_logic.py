"""The real-arm logic without ROS: kinematics, limits, contract, rest detection, twin, adapter."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from icpi.envs import make_task
from icpi.robot.adapter import ArmTask, TrialFailed, relabel_rollouts
from icpi.robot.contract import ContractError, TrialRequest, TrialResult
from icpi.robot.params import SkillNodeConfig
from icpi.robot.runner import ClockRate, SkillRunner
from icpi.robot.skill import (
    ArmModel,
    Limits,
    Plan,
    State,
    TimedPlan,
    TrialTiming,
    Unreachable,
    clip_to_trust_region,
    curve_peaks,
    held_at_start,
    plan_move,
    plan_trial,
    skill_task,
    stop_plan,
    trust_region_violation,
)
from icpi.robot.track import BallTrack, RestRule, Watchdog
from icpi.robot.twin import Twin


def test_import_icpi_robot_stays_light():
    code = (
        "import sys, icpi, icpi.robot, icpi.robot.skill, icpi.robot.adapter;"
        "print(any(m == 'rclpy' or m.startswith('rclpy.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- kinematics
@pytest.mark.parametrize("kin", ["planar_2r", "cartesian_xy"])
@pytest.mark.parametrize("elbow", [1, -1])
def test_ik_inverts_fk(kin, elbow):
    arm = ArmModel(kinematics=kin, elbow=elbow, link_lengths=(0.4, 0.4))
    xy = np.random.default_rng(0).uniform([-0.3, -0.3], [0.2, 0.3], size=(50, 2))
    np.testing.assert_allclose(arm.fk(arm.ik(xy)), xy, atol=1e-12)


def test_unreachable_and_bad_models():
    arm = ArmModel(link_lengths=(0.2, 0.2))
    with pytest.raises(Unreachable, match="reach"):
        arm.ik(np.array([0.5, 0.0]))
    with pytest.raises(ValueError):
        ArmModel(kinematics="scara")
    with pytest.raises(ValueError):
        ArmModel(elbow=0)


@pytest.mark.parametrize("skill", ["ball-roll-gc", "slide"])
def test_trial_plan_follows_the_twin_stroke(skill):
    cfg = SkillNodeConfig()
    arm = cfg.arm()
    spec = skill_task(skill).theta_spec
    theta = 0.5 * (spec.low_array + spec.high_array)
    timing = TrialTiming(sample_dt=0.002, approach_duration=0.5, dwell=0.1, hold=0.1)
    plan = plan_trial(skill, theta, arm, State.at_rest(cfg.home), timing)
    assert np.all(np.diff(plan.times) > 0)
    stroke = make_task(skill).stroke(theta)
    n = round((stroke.duration + 0.1) / 0.002) + 1
    _start, ref = stroke.reference(n, 0.002)
    t, q = plan.samples()
    assert t[0] == pytest.approx(0.002) and t[-1] == pytest.approx(plan.duration)
    effector = arm.fk(q)
    k0 = round(plan.stroke_start / 0.002) - 1  # index of the stroke's first sample
    np.testing.assert_allclose(effector[k0:], ref, atol=1e-12)
    np.testing.assert_allclose(effector[0], arm.fk(np.asarray(cfg.home)), atol=1e-3)
    np.testing.assert_array_equal(plan.velocities[-1], 0.0)
    # Few knots: one for the approach, one for the dwell, the stroke's, one for the hold.
    assert len(plan.times) == 2 + round(stroke.duration / 0.002) + 1 + 1
    # The shipped limits admit the whole θ box of both skills.
    assert cfg.limits().check_plan(arm, plan) == []


def test_limits_refuse_each_kind_of_violation():
    cfg = SkillNodeConfig()
    arm, home = cfg.arm(), State.at_rest(cfg.home)
    theta = [0.5, 0.12, 0.12]  # fastest, widest stroke
    plan = plan_trial("ball-roll-gc", theta, arm, home, cfg.timing())
    ok = cfg.limits()
    times, positions = plan.samples()
    assert ok.check(arm, times, positions, home) == []

    def with_(**kw):
        base = dict(
            position_lower=ok.position_lower,
            position_upper=ok.position_upper,
            velocity=ok.velocity,
            acceleration=ok.acceleration,
            jerk=ok.jerk,
            workspace=ok.workspace,
        )
        base.update(kw)
        return Limits(**base).check(arm, times, positions, home)

    assert "outside" in with_(position_upper=(1.0, 2.4))[0]
    assert "speed" in with_(velocity=(3.0, 3.0))[0]
    assert "acceleration" in with_(acceleration=(50.0, 50.0))[0]
    assert "jerk" in with_(jerk=(3750.0, 3750.0))[0]
    assert "workspace" in with_(workspace=(-0.35, 0.0, -0.3, 0.3))[0]
    bad = positions.copy()
    bad[3, 0] = math.nan
    assert ok.check(arm, times, bad, home) == ["trajectory holds NaN or inf"]
    assert "increase" in ok.check(arm, times[::-1], positions, home)[0]
    end = State.at_rest(plan.end)
    back = plan_move(end, cfg.home, 1.0, 0.01)
    assert len(back.times) == 1  # one quintic
    assert ok.check_plan(arm, back) == []
    # A trajectory that starts away from the reference, or ends in motion, is refused.
    bt, bq = back.samples()
    assert "speed" in ok.check(arm, bt, bq, home)[0]
    slow = Limits(
        ok.position_lower, ok.position_upper, ok.velocity, (20.0, 20.0), ok.jerk, ok.workspace
    )
    assert slow.check_plan(arm, back) == []
    half = slow.check(arm, bt[:50], bq[:50], end)
    assert any("acceleration" in v for v in half), half


def test_limits_are_checked_between_the_knots_exactly():
    """Issue 19: the knot-only check missed what the controller's quintics do in between."""
    cfg = SkillNodeConfig()
    arm, limits = cfg.arm(), cfg.limits()
    home = np.asarray(cfg.home)
    plan = plan_trial("ball-roll-gc", (0.1, 0.06, 0.3), arm, State.at_rest(home), TrialTiming())
    peaks = curve_peaks(plan.curve)
    dense = np.linspace(0.0, plan.duration, 200_001)
    for order, (peak, at) in zip((1, 2, 3), peaks, strict=True):
        sampled = np.abs(plan.curve(dense, nu=order)).max(axis=0)
        np.testing.assert_allclose(peak, sampled, rtol=1e-3)
        for j in range(2):  # at a knot the jerk may jump: the peak is one side's
            sides = [abs(plan.curve(at[j] + e, nu=order)[j]) for e in (-1e-9, 1e-9)]
            assert max(sides) == pytest.approx(peak[j], rel=1e-3)
    # Two knots at rest 0.1 s apart, passing through the first at 3 rad/s: the positions
    # at the knots say nothing moved; the quintic between them swings out and back.
    swing = Plan(
        np.array([0.1, 0.2]),
        np.array([home, home]),
        np.array([[3.0, 0.0], [0.0, 0.0]]),
        np.zeros((2, 2)),
        State.at_rest(home),
        0.1,
    )
    assert limits.check(arm, *swing.samples(), swing.start) == []  # knots only: "fine"
    tight = Limits(**{**limits.__dict__, "velocity": (2.0, 2.0)})
    assert any("joint 0 speed 3.000" in v for v in tight.check_plan(arm, swing))


@pytest.mark.parametrize("model", ["stamp", "jtc"])
def test_every_stop_of_a_trial_is_within_limits_between_its_knots(model):
    """The stop scan of issue 19 (every 20 ms here; benchmarks/bench_robot.py: every 5 ms)."""
    cfg = SkillNodeConfig(
        velocity_limits=[4.0, 4.0], acceleration_limits=[40.0, 40.0], jerk_limits=[1500.0, 1500.0]
    )
    arm, limits = cfg.arm(), cfg.limits()
    plan = plan_trial("ball-roll-gc", (0.1, 0.06, 0.3), arm, State.at_rest(cfg.home), TrialTiming())
    if model == "jtc":
        plan = held_at_start(plan)
    active = TimedPlan(plan, 0.0)
    window = 0.1  # the stop's lead: sent at now - window
    lims = [np.asarray(x) for x in (limits.velocity, limits.acceleration, limits.jerk)]
    n = 0
    for now in np.arange(0.01, plan.duration, 0.02):
        jtc_from = now - 2.0 * window if model == "jtc" else None
        timed, why = stop_plan(active, now, arm, limits, 0.01, jtc_from)
        assert timed is not None and why == [], (now, why)
        stop = timed.plan
        for (peak, _), lim in zip(curve_peaks(stop.curve), lims, strict=True):
            assert np.all(peak <= lim * (1 + 1e-9)), (now, peak, lim)
        if model == "jtc":
            # Stamped in the past: whenever it arrives in its lead (or a lead later still),
            # joint_trajectory_controller samples into its own segments, which go on along
            # the running curve until `now`: no bridge, no step of the acceleration.
            assert timed.sent_at + stop.times[0] <= now - 2.0 * window + 1e-9
            for t in np.linspace(now - 2.0 * window, now, 41):
                for d in range(3):
                    np.testing.assert_allclose(
                        stop.curve(t - timed.sent_at, nu=d),
                        plan.curve(np.clip(t, 0.0, plan.duration), nu=d),
                        atol=1e-9,
                    )
        else:
            assert timed.sent_at == now
        n += 1
    assert n > 50


def test_stop_decelerates_along_the_path_within_limits():
    cfg = SkillNodeConfig(
        velocity_limits=[4.0, 4.0], acceleration_limits=[40.0, 40.0], jerk_limits=[1500.0, 1500.0]
    )
    arm, limits = cfg.arm(), cfg.limits()
    timing = TrialTiming(sample_dt=0.002, approach_duration=1.0)
    plan = plan_trial("ball-roll-gc", (0.1, 0.06, 0.3), arm, State.at_rest(cfg.home), timing)
    assert limits.check_plan(arm, plan) == []
    active = TimedPlan(plan, sent_at=10.0)
    path = arm.fk(plan.curve(np.arange(0.0, plan.duration, 1e-4)))  # the planned path, dense
    speeds = []
    for t in np.linspace(0.05, plan.duration - 0.01, 25):  # approach, dwell, stroke, hold
        timed, why = stop_plan(active, 10.0 + t, arm, limits, 0.002)
        assert why == [] and timed is not None, why
        stop = timed.plan
        ref = active.state_at(10.0 + t)
        np.testing.assert_allclose(stop.start.position, ref.position)
        assert limits.check(arm, *stop.samples(), ref) == []
        # It stays on the planned path (no new positions): every point lies on it.
        effector = arm.fk(stop.curve(np.linspace(0.0, stop.duration, 200)))
        dist = np.min(np.linalg.norm(effector[:, None] - path[None], axis=2), 1)
        assert dist.max() < 1e-4
        speeds.append(float(np.max(np.abs(ref.velocity))))
    assert max(speeds) > 1.0  # some stops started at speed
    # At rest (after the end) there is nothing to stop.
    assert stop_plan(active, 10.0 + plan.duration + 0.1, arm, limits, 0.002) == (None, [])
    # Before it starts (sent with a lead): the stop holds where it would have started.
    timed, why = stop_plan(active, 9.5, arm, limits, 0.002)
    assert why == [] and timed is not None
    np.testing.assert_allclose(timed.plan.end, cfg.home, atol=1e-6)


def test_trust_region_refuses_at_the_arm_and_clips_at_the_driver():
    box = [0.1, 0.01, 0.0]
    assert trust_region_violation([0.2, 0.05, 0.5], None, box) is None
    assert trust_region_violation([0.05, 0.055, 0.1], [0.0, 0.05, 0.5], box) is None
    assert "Δθ[0]" in trust_region_violation([0.3, 0.05, 0.5], [0.0, 0.05, 0.5], box)
    clipped = clip_to_trust_region(np.array([0.3, 0.0, 0.1]), np.array([0.0, 0.05, 0.5]), box)
    np.testing.assert_allclose(clipped, [0.1, 0.04, 0.1])


# ---------------------------------------------------------------- contract
def test_contract_round_trip_and_rejections():
    req = TrialRequest(7, (0.1, 0.05, 0.3), (0.7, 0.0))
    assert TrialRequest.decode(req.encode(), 3, 2) == req
    for bad in ([7.0, 0.1], [7.5, 0.1, 0.05, 0.3, 0.7, 0.0], [7.0, math.nan, 0, 0, 0, 0]):
        with pytest.raises(ContractError):
            TrialRequest.decode(bad, 3, 2)
    with pytest.raises(ContractError):
        TrialRequest.decode([-1.0, 0, 0, 0, 0, 0], 3, 2)
    res = TrialResult(7, "ok", theta=[0.1], outcome=[0.6, 0.1], e=[-0.1, 0.1], cost=0.1414)
    res.track = [[0.0, 0.0, 0.0, 0.03], [1.0, 0.6, 0.1, 0.03]]
    back = TrialResult.from_json(res.to_json())
    assert back.ok and back.cost == pytest.approx(0.1414)
    np.testing.assert_allclose(back.trajectory()[-1], [0.6, 0.1, 0.03])
    refused = TrialResult.from_json(TrialResult(3, "refused", "limits").to_json())
    assert not refused.ok and math.isnan(refused.cost)
    for text in ("nope", "[]", json.dumps({"trial_id": 1, "status": "weird"})):
        with pytest.raises(ContractError):
            TrialResult.from_json(text)


# ---------------------------------------------------------------- tracking
def test_rest_detection_and_watchdog():
    track = BallTrack(RestRule(window=0.3, radius=0.003, min_points=5))
    for k in range(60):  # rolls for 0.5 s at 1 m/s, then sits still
        t = k / 60
        track.add(t, (min(t, 0.5), 0.0, 0.03))
        rest = track.rest_position(t)
        if t < 0.5 + 0.3:
            assert rest is None
    assert rest is not None and rest[0] == pytest.approx(0.5)
    sparse = BallTrack(RestRule(window=0.3, radius=0.003, min_points=5))
    sparse.add(0.0, (0, 0, 0))
    sparse.add(0.29, (0, 0, 0))
    assert sparse.rest_position(0.3) is None  # too few points: no decision
    assert track.rest_position(1.0, since=0.9) is None  # only points after `since` count
    dog = Watchdog({"a": 0.5, "b": 1.0})
    assert len(dog.stale(0.0)) == 2
    dog.feed("a", 0.0)
    dog.feed("b", 0.0)
    assert dog.stale(0.4) == []
    assert dog.stale(0.7)[0].startswith("a: silent")


# ---------------------------------------------------------------- twin
def command(twin, plan, start=None):
    """Send a plan to the twin as the node does: knots with velocities and accelerations."""
    return twin.command(
        plan.times,
        plan.positions,
        reset_at_home_tol=0.02,
        start=start,
        velocities=plan.velocities,
        accelerations=plan.accelerations,
    )


def test_twin_matches_the_in_process_rollout():
    cfg = SkillNodeConfig()
    twin = Twin("ball-roll-gc", cfg.arm(), cfg.home, [0.05, 0.004])
    task = twin.task
    theta = np.array([0.25, 0.08, 0.3])
    home = State.at_rest(cfg.home)
    plan = plan_trial("ball-roll-gc", theta, cfg.arm(), home, TrialTiming(sample_dt=0.002))
    command(twin, plan)
    twin.step(round(plan.stroke_start / twin.dt) + task.nstep)
    expected = task.rollout(twin.instance, theta).outcome
    np.testing.assert_allclose(twin.object_xyz()[:2], expected, atol=1e-4)
    q, _ = twin.joint_state()
    np.testing.assert_allclose(q, plan.end, atol=1e-3)
    assert twin.limited == 0  # the drive follows a trajectory within limits exactly
    with pytest.raises(ValueError):
        twin.command([0.1, 0.05], plan.positions[:2], None)


@pytest.mark.parametrize("model", ["stamp", "jtc"])
def test_a_late_stop_never_moves_the_twin_faster_than_its_drive_limits(model):
    """Issue 24: a stop stamped 0.3 s in the past made the twin jump at 7 rad/s."""
    cfg = SkillNodeConfig(velocity_limits=[4.0, 4.0], acceleration_limits=[40.0, 40.0])
    arm, limits, vmax = cfg.arm(), cfg.limits(), np.array([4.0, 4.0])
    twin = Twin("ball-roll-gc", arm, cfg.home, [0.065, 0.0035], model, vmax, [40.0, 40.0])
    plan = plan_trial("ball-roll-gc", (0.1, 0.06, 0.3), arm, State.at_rest(cfg.home), TrialTiming())
    assert limits.check_plan(arm, plan) == []
    sent_at = twin.time + twin.dt
    command(twin, plan, start=sent_at)
    twin.step(round((plan.stroke_start + 0.15) / twin.dt))  # mid-stroke, at speed
    assert np.max(np.abs(twin.joint_state()[1])) > 1.0
    # The stop the arm node planned 0.3 s ago reaches the twin only now.
    stamp = twin.time - 0.3
    timed, why = stop_plan(TimedPlan(plan, sent_at), stamp, arm, limits, 0.01)
    assert timed is not None, why
    late = command(twin, timed.plan, start=stamp)
    if model == "stamp":
        assert late > 0.2
    else:  # sampled into 0.3 s in: the reference jumps to where the stop would be by now
        assert late == 0.0 and np.max(np.abs(twin.takeover_step[0])) > 0.01
    speeds = []
    for _ in range(round(1.5 / twin.dt)):
        twin.step()
        speeds.append(np.abs(twin.joint_state()[1]))
    assert np.max(speeds) <= 1.05 * 4.0, np.max(speeds, axis=0)
    assert twin.limited > 0  # the drive held the jump to its limits
    assert np.max(speeds[-20:]) < 1e-3  # and the arm came to rest


def test_a_jtc_stop_taken_over_anywhere_in_its_lead_continues_the_running_curve():
    """Issue 19: a jtc controller takes a stop over on arrival; stamped in the past and led
    in by the running curve's own knots, it is sampled into, whenever it arrives."""
    cfg = SkillNodeConfig(
        velocity_limits=[4.0, 4.0], acceleration_limits=[40.0, 40.0], jerk_limits=[1500.0, 1500.0]
    )
    arm, limits = cfg.arm(), cfg.limits()
    plan = held_at_start(
        plan_trial("ball-roll-gc", (0.1, 0.06, 0.3), arm, State.at_rest(cfg.home), TrialTiming())
    )
    lead = 0.1
    for t_stop in (0.5, plan.stroke_start + 0.1):  # mid-approach, mid-stroke
        for arrive in (0.0, 0.5, 1.0):  # how far into its lead it arrives
            twin = Twin(
                "ball-roll-gc", arm, cfg.home, [0.065, 0.0035], "jtc", [4.0] * 2, [40.0] * 2
            )
            command(twin, plan, start=0.2)  # arrives 0.2 s early: held at home till then
            start = 0.2 + t_stop
            timed, why = stop_plan(TimedPlan(plan, 0.2), start, arm, limits, 0.01, start - 2 * lead)
            assert timed is not None, why
            twin.step(round((start - lead * (1.0 - arrive)) / twin.dt) - round(twin.time / twin.dt))
            command(twin, timed.plan, start=timed.sent_at)
            assert np.max(np.abs(twin.takeover_step)) < 1e-9, (t_stop, arrive, twin.takeover_step)
            twin.step(round(1.0 / twin.dt))
            assert twin.limited == 0, (t_stop, arrive)
            assert np.max(np.abs(twin.joint_state()[1])) < 1e-3  # at rest
            np.testing.assert_allclose(twin.joint_state()[0], timed.plan.end, atol=1e-3)


def test_twin_controller_models_take_a_trajectory_over():
    """stamp: at the stamp, from the desired state; jtc: on arrival, from the measured one."""
    cfg = SkillNodeConfig()
    arm, home = cfg.arm(), np.asarray(cfg.home)
    goal = home + np.array([0.1, -0.1])
    move = plan_move(State.at_rest(home), goal, 0.5, 0.01)
    for model in ("stamp", "jtc"):
        twin = Twin("ball-roll-gc", arm, home, [0.065, 0.0035], model)
        command(twin, move, start=0.2)
        twin.step(round(0.1 / twin.dt))
        moved = np.max(np.abs(twin.joint_state()[0] - home))
        # stamp waits for its stamp; jtc starts towards the first point on arrival.
        assert (moved < 1e-6) if model == "stamp" else (moved > 1e-4), (model, moved)
        twin.step(round(1.0 / twin.dt))
        np.testing.assert_allclose(twin.joint_state()[0], goal, atol=1e-3)
        assert twin.limited == 0
    with pytest.raises(ValueError, match="controller_model"):
        Twin("ball-roll-gc", arm, home, [0.065, 0.0035], "pid")


def test_slide_twin_matches_the_in_process_push():
    cfg = SkillNodeConfig(skill="slide")
    twin = Twin("slide", cfg.arm(), cfg.home, [0.2, 0.2])
    theta = np.array([0.3, 0.2, 0.5])
    plan = plan_trial("slide", theta, cfg.arm(), State.at_rest(cfg.home), TrialTiming(0.002))
    assert cfg.limits().check_plan(cfg.arm(), plan) == []
    command(twin, plan)
    twin.step(round(plan.stroke_start / twin.dt) + twin.task.nstep)
    expected = twin.task.rollout(twin.instance, theta).outcome
    # The puck settles on the table during the approach (in-process it starts unsettled);
    # Coulomb sliding turns that into about a millimetre.
    np.testing.assert_allclose(twin.object_xyz()[:2], expected, atol=3e-3)


# ---------------------------------------------------------------- runner on the twin
class TwinArm:
    """The twin stepped in real time on a thread, wired straight to a SkillRunner."""

    def __init__(self, cfg: SkillNodeConfig, time_scale: float = 8.0):
        self.cfg = cfg
        self.twin = Twin(cfg.skill, cfg.arm(), cfg.home, [0.065, 0.0035])
        self.runner = SkillRunner(cfg, self.send, controller_clock=lambda: self.twin.time)
        self.lock = threading.Lock()
        self.sent = []
        self.camera = True
        self.joints = True
        self.frame = "task"  # frame_id of the camera's points
        self.frozen_ball = None  # a camera that keeps reporting this point
        # (delay [simulated s], action): run the action once, that long after the next
        # trajectory's start, on the twin's clock (a fault at a known point of a motion).
        self.after_send = None
        self._due = None
        self.stop = threading.Event()
        self.scale = time_scale
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()
        # joint states and camera heard: ready, but for the arm's driver (where configured)
        self.wait_state("idle", "arm_fault")

    def wait_state(self, *states, timeout=20.0):
        deadline = time.monotonic() + timeout
        while self.runner.state() not in states:
            assert time.monotonic() < deadline, f"the runner never became {' or '.join(states)}"
            time.sleep(0.01)

    def send(self, plan, start):
        with self.lock:
            self.sent.append(plan)
            stamp = start()
            command(self.twin, plan, stamp)
            if self.after_send is not None:
                delay, action = self.after_send
                self._due, self.after_send = (stamp + delay, action), None
        return stamp

    def loop(self):
        wall0, sim0 = time.monotonic(), self.twin.time
        most = round(0.05 * self.scale / 0.002)  # as the node: starved, the clock slows
        frame = 1.0 / 60.0  # a 60 Hz camera in simulated time, as the node's
        next_cam = self.twin.time
        while not self.stop.is_set():
            balls = []
            with self.lock:
                n = int((sim0 + (time.monotonic() - wall0) * self.scale - self.twin.time) / 0.002)
                if n > most:
                    sim0 -= (n - most) * 0.002
                    n = most
                for _ in range(max(n, 0)):
                    self.twin.step()
                    if self._due is not None and self.twin.time >= self._due[0] - 1e-9:
                        self._due[1]()
                        self._due = None
                    if self.twin.time >= next_cam - 1e-9:
                        next_cam += frame
                        balls.append((self.twin.object_xyz(), self.twin.time))
                q, qd = self.twin.joint_state()
                stamp = self.twin.time
            if self.joints:
                self.runner.on_joint_state(self.cfg.joint_names, q.tolist(), qd.tolist(), stamp)
            if self.camera:
                for ball, t in balls:
                    seen = ball if self.frozen_ball is None else self.frozen_ball
                    self.runner.on_ball(list(seen), t, self.frame)
            time.sleep(0.01)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=2)


def fast_cfg(**kw):
    cfg = SkillNodeConfig(
        sample_dt=0.002,
        approach_duration=0.3,
        dwell=0.05,
        return_duration=0.3,
        rest_window=0.2,
        joint_state_timeout=1.0,  # simulated s: 0.125 wall s at time_scale 8
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.mark.timeout(60)
def test_runner_scores_a_trial_like_the_in_process_rollout():
    arm = TwinArm(fast_cfg())
    try:
        theta = (0.2, 0.07, 0.3)
        assert arm.runner.try_reserve()
        res = arm.runner.run(TrialRequest(1, theta, (0.7, 0.1)))
        assert res.ok, res.reason
        expected = arm.twin.task.rollout(arm.twin.instance, theta).outcome
        np.testing.assert_allclose(res.outcome, expected, atol=2e-3)
        np.testing.assert_allclose(res.e, np.asarray(res.outcome) - [0.7, 0.1])
        assert res.trajectory().shape[1] == 3
        np.testing.assert_allclose(arm.twin.joint_state()[0], arm.cfg.home, atol=0.02)
        # Refusals never move the arm: θ out of bounds, a Δθ beyond the trust region.
        n_sent = len(arm.sent)
        for tid, bad in ((2, (0.9, 0.07, 0.3)), (3, (0.2, 0.07 + 0.06, 0.3))):
            assert arm.runner.try_reserve()
            res = arm.runner.run(TrialRequest(tid, bad, (0.7, 0.1)))
            assert res.status == "refused", res
        assert len(arm.sent) == n_sent
        # A stale camera aborts the trial and halts the arm.
        arm.camera = False
        time.sleep(arm.cfg.ball_timeout + 0.1)
        assert arm.runner.try_reserve()
        res = arm.runner.run(TrialRequest(4, theta, (0.7, 0.1)))
        assert res.status == "aborted" and "camera" in res.reason
        # The e-stop refuses trials until cleared.
        arm.camera = True
        arm.runner.engage_estop("test")
        assert arm.runner.try_reserve()
        assert arm.runner.run(TrialRequest(5, theta, (0.7, 0.1))).status == "estopped"
        arm.runner.clear_estop()
        time.sleep(0.1)  # the camera is back
        assert arm.runner.try_reserve()
        assert arm.runner.run(TrialRequest(6, theta, (0.7, 0.1))).ok
        # Joint states that stop mid-trajectory abort the trial; a second request is busy.
        assert arm.runner.try_reserve()
        assert not arm.runner.try_reserve()
        out = {}
        worker = threading.Thread(
            target=lambda: out.update(r=arm.runner.run(TrialRequest(7, theta, (0.7, 0.1))))
        )
        n_sent = len(arm.sent)
        worker.start()
        deadline = time.monotonic() + 10
        while len(arm.sent) == n_sent and time.monotonic() < deadline:
            time.sleep(0.005)
        arm.joints = False
        worker.join(timeout=10)
        assert out["r"].status == "aborted" and "joint_states" in out["r"].reason, out
        assert arm.runner.state() == "no_joint_states"
    finally:
        arm.close()


@pytest.mark.timeout(120)
def test_a_protective_stop_or_a_reflex_refuses_before_homing_and_stops_a_moving_arm():
    """Issue 19, item 4: UR robot and safety modes and Franka's robot mode, on the runner.

    The faults mid-motion come a quarter into the approach on the twin's clock; the stop
    starts a stop lead later (0.2 simulated s at time scale 2), near the approach's top
    speed, and the arm moves until 1 s: the stop finds it moving unless the runner's
    thread is held up for about 0.3 s.
    """
    cfg = fast_cfg(
        robot_mode_topic="ur/robot_mode",
        safety_mode_topic="ur/safety_mode",
        franka_state_topic="franka/robot_state",
        approach_duration=1.0,
    )
    arm = TwinArm(cfg, time_scale=2.0)
    runner, theta, goal = arm.runner, (0.2, 0.07, 0.3), (0.7, 0.1)
    home = np.asarray(cfg.home)

    def trial(tid):
        assert runner.try_reserve()
        return runner.run(TrialRequest(tid, theta, goal))

    try:
        # The arm off home (moved by hand): each fault refuses before the move home.
        away = home + 0.1
        with arm.lock:
            command(arm.twin, plan_move(State.at_rest(home), away, 0.3, 0.002), arm.twin.time)
        deadline = time.monotonic() + 20
        while np.max(np.abs(arm.twin.joint_state()[0] - away)) > 1e-3:
            assert time.monotonic() < deadline, "the twin never reached the off-home pose"
            time.sleep(0.01)
        res = trial(1)
        assert res.status == "refused", res
        assert res.reason == "no UR robot mode received on ur/robot_mode"
        runner.on_mode("robot_mode_topic", 3)
        runner.on_mode("safety_mode_topic", 1)
        runner.on_mode("franka_state_topic", 2)
        res = trial(2)
        assert res.reason == "UR robot mode is POWER_OFF, not RUNNING (ur/robot_mode)", res
        runner.on_mode("robot_mode_topic", 7)
        runner.on_mode("safety_mode_topic", 3)
        res = trial(3)
        assert res.status == "refused", res
        assert res.reason == "UR safety mode is PROTECTIVE_STOP, not NORMAL (ur/safety_mode)"
        runner.on_mode("safety_mode_topic", 1)
        runner.on_mode("franka_state_topic", 99)
        res = trial(4)
        assert res.reason == "Franka robot mode is unknown (99), not MOVE (franka/robot_state)"
        assert arm.sent == []  # nothing moved, not even home
        runner.on_mode("franka_state_topic", 2)
        assert trial(5).ok
        with pytest.raises(KeyError):
            runner.on_mode("speed_scaling_topic", 1)
        # A protective stop, then a reflex, during the approach: a stop along the path
        # from speed, within the limits, and the trial aborted with the reason.
        for tid, field, bad, ok, reason in (
            (6, "safety_mode_topic", 3, 1, "UR safety mode is PROTECTIVE_STOP, not NORMAL"),
            (7, "franka_state_topic", 4, 2, "Franka robot mode is REFLEX, not MOVE"),
        ):
            n_sent = len(arm.sent)
            arm.after_send = (0.25, lambda field=field, bad=bad: runner.on_mode(field, bad))
            res = trial(tid)
            assert res.status == "aborted" and res.reason.startswith(reason), res
            assert len(arm.sent) == n_sent + 2  # the trial and its stop
            stop = arm.sent[-1]
            assert np.max(np.abs(stop.start.velocity)) > 0.01  # the arm was moving
            np.testing.assert_allclose(stop.velocities[-1], 0.0, atol=1e-9)
            assert cfg.limits().check(cfg.arm(), *stop.samples(), stop.start) == []
            runner.on_mode(field, ok)
            assert trial(tid + 10).ok  # back home first, then the trial
    finally:
        arm.close()


@pytest.mark.timeout(120)
def test_outcomes_are_trusted_only_from_the_task_frame_a_moving_ball_and_a_full_speed_arm():
    """Issue 19, item 4, on the twin wired to the runner."""
    arm = TwinArm(fast_cfg(speed_scaling_topic="scaling", program_running_topic="running"))
    theta, goal = (0.2, 0.07, 0.3), (0.7, 0.1)

    def trial(tid):
        assert arm.runner.try_reserve()
        return arm.runner.run(TrialRequest(tid, theta, goal))

    try:
        # The UR driver's topics: nothing heard yet, a stopped program, reduced speed.
        res = trial(1)
        assert res.status == "refused" and "robot program is not running" in res.reason
        arm.runner.on_program_running(True)
        res = trial(2)
        assert res.status == "refused" and "no speed scaling" in res.reason
        arm.runner.on_speed_scaling(50.0)  # UR publishes percent
        res = trial(3)
        assert res.status == "refused" and "speed scaling 50.0 % < 100 %" in res.reason
        assert arm.sent == []  # nothing moved
        arm.runner.on_speed_scaling(100.0)
        assert trial(4).ok
        # Speed scaling drops while the arm moves: stop, aborted with that reason.
        n_sent = len(arm.sent)
        out = {}
        worker = threading.Thread(target=lambda: out.update(r=trial(5)))
        worker.start()
        deadline = time.monotonic() + 10
        while len(arm.sent) == n_sent and time.monotonic() < deadline:
            time.sleep(0.005)
        arm.runner.on_speed_scaling(30.0)
        worker.join(timeout=20)
        assert out["r"].status == "aborted" and "speed scaling 30.0 %" in out["r"].reason
        assert len(arm.sent) >= n_sent + 2  # the trial and its stop
        arm.runner.on_speed_scaling(100.0)
        # Points from another frame are refused: the trial aborts naming the frame.
        arm.frame = "camera_optical_frame"
        arm.wait_state("no_camera")
        res = trial(6)
        assert res.status == "aborted" and "'camera_optical_frame'" in res.reason, res
        assert "task frame 'task'" in res.reason
        # A ball that never moves (the camera sees it on its spot): no_motion, no outcome.
        arm.frame = "task"
        arm.frozen_ball = arm.twin.object_xyz().tolist()
        arm.wait_state("idle")
        res = trial(7)
        assert res.status == "no_motion" and "ball moved 0.0 mm" in res.reason, res
        assert res.outcome == [] and res.cost != res.cost  # NaN: never scored
        assert TrialResult.from_json(res.to_json()).status == "no_motion"
    finally:
        arm.close()


def test_staleness_is_judged_on_header_stamps():
    runner = SkillRunner(fast_cfg(), lambda plan, start: start(), controller_clock=lambda: 50.0)
    names, home = runner.cfg.joint_names, list(runner.cfg.home)
    runner.on_joint_state(names, home, [], stamp=48.0)  # arrived now, measured 2 s ago
    runner.on_ball((0.0, 0.0, 0.03), stamp=48.0)
    assert runner.state() == "no_joint_states"
    runner.on_joint_state(names, home, [], stamp=49.9)
    assert runner.state() == "no_camera"
    runner.on_ball((0.0, 0.0, 0.03), stamp=49.9)
    assert runner.state() == "idle"


def test_the_state_says_arm_fault_while_the_arms_driver_cannot_run_a_trial():
    """A protective stop (or nothing heard yet) reads ``arm_fault``: the driver waits."""
    cfg = fast_cfg(robot_mode_topic="ur/robot_mode", safety_mode_topic="ur/safety_mode")
    runner = SkillRunner(cfg, lambda plan, start: start(), controller_clock=lambda: 50.0)
    runner.on_joint_state(list(cfg.joint_names), list(cfg.home), [], stamp=49.9)
    runner.on_ball((0.0, 0.0, 0.03), stamp=49.9)
    assert runner.state() == "arm_fault"
    assert runner.arm_fault() == "no UR robot mode received on ur/robot_mode"
    runner.on_mode("robot_mode_topic", 7)  # RUNNING
    runner.on_mode("safety_mode_topic", 1)  # NORMAL
    assert runner.state() == "idle" and runner.arm_fault() is None
    runner.on_mode("safety_mode_topic", 3)
    assert runner.state() == "arm_fault"
    assert runner.arm_fault() == "UR safety mode is PROTECTIVE_STOP, not NORMAL (ur/safety_mode)"
    runner.engage_estop()
    assert runner.state() == "estopped"  # the e-stop comes first


def test_leads_are_wall_time_scaled_to_the_controller_clock():
    rate = ClockRate(window=1.0)
    assert rate.rate == 1.0  # until measured
    for k in range(30):  # a twin at time_scale 4
        rate.sample(0.1 * k, 10.0 + 0.4 * k)
    assert rate.rate == pytest.approx(4.0)
    rate.sample(3.5, 1.0)  # the clock jumps back (a restarted twin): a new window
    assert rate.rate == pytest.approx(4.0)
    rate.sample(4.6, 1.0 + 1.1 * 0.5)
    assert rate.rate == pytest.approx(0.5)
    wall, sim = [0.0], [100.0]
    runner = SkillRunner(
        fast_cfg(trajectory_lead=0.2, stop_lead=0.05),
        lambda plan, start: start(),
        clock=lambda: wall[0],
        controller_clock=lambda: sim[0],
    )
    for _ in range(25):  # joint states sample both clocks
        wall[0] += 0.1
        sim[0] += 0.4
        runner.on_joint_state(runner.cfg.joint_names, list(runner.cfg.home), [])
    assert runner.clock_rate.rate == pytest.approx(4.0)
    assert runner._start_time() == pytest.approx(sim[0] + 0.8, abs=0.002)
    assert runner._start_time(runner.cfg.stop_lead) == pytest.approx(sim[0] + 0.2, abs=0.002)


def test_lockstep_grants_make_progress_whatever_the_measured_rate():
    """A twin slower than a fifteenth of real time must not freeze lockstep for good.

    The twin advances only up to the grant, which was the lead times the clock rate the
    arm node measured on joint states. A twin slower than grid step / lead (0.01 / 0.15:
    a camera twin rendering on one core at load 20) measured a rate so low that the grant
    fell onto the arm node's own clock; the twin, stopped there, could never raise it
    again (issue 24: clock 4.18 s, grant [4.18, 1] for good).
    """
    wall, sim = [0.0], [4.18]
    runner = SkillRunner(
        fast_cfg(trajectory_lead=0.15, stop_lead=0.15, sample_dt=0.01),
        lambda plan, start: start(),
        clock=lambda: wall[0],
        controller_clock=lambda: sim[0],
    )
    names, home = runner.cfg.joint_names, list(runner.cfg.home)
    for _ in range(2000):  # 20 s of wall time: a lockstep twin at time_scale 0.05
        wall[0] += 0.01
        granted, _ = runner.grant()
        sim[0] = max(sim[0], min(sim[0] + 0.05 * 0.01, granted))
        runner.on_joint_state(names, home, [], stamp=sim[0])
    assert runner.clock_rate.rate == pytest.approx(0.05, rel=0.1)
    assert sim[0] - 4.18 > 0.9, (runner.grant(), sim[0])  # 1.0 s simulated in 20 s
    granted, _ = runner.grant()
    assert granted - sim[0] >= 0.15 - 0.01  # never less than the lead in controller time


# ---------------------------------------------------------------- adapter
class InProcessTransport:
    """Answers requests with the in-process MuJoCo rollout (the graph's stand-in)."""

    def __init__(self, fail: str | None = None):
        self.task = make_task("ball-roll-gc")
        self.requests = []
        self.fail = fail

    def request(self, req, timeout):
        self.requests.append(req)
        if self.fail == "timeout":
            raise TimeoutError("nobody home")
        if self.fail:
            return TrialResult(req.trial_id, self.fail, "because")
        inst = self.task.make_instance(goal=req.goal, physics={"ball_mass": 0.065})
        r = self.task.rollout(inst, req.theta)
        track = [[0.0, *row] for row in r.trajectory[::50].tolist()]
        track.append([0.0, *r.trajectory[-1].tolist()])
        return TrialResult(
            req.trial_id,
            "ok",
            theta=list(req.theta),
            goal=list(req.goal),
            outcome=r.outcome.tolist(),
            e=r.e.tolist(),
            cost=r.cost,
            track=track,
        )


def test_adapter_clips_and_reports_failures():
    task = ArmTask("ball-roll-gc", InProcessTransport(), goal=(0.7, 0.1), trust_region=[0.1, 0, 0])
    first = task.rollout(task.instance, [2.0, 0.05, 0.3])
    assert first.clipped and first.theta[0] == pytest.approx(0.6)
    second = task.rollout(task.instance, [-0.6, 0.05, 0.3])
    assert second.clipped and second.theta[0] == pytest.approx(0.5)
    np.testing.assert_allclose(
        task.outcome(second.trajectory, task.instance.goal_array), second.outcome
    )
    for fail in ("refused", "estopped", "aborted", "timeout"):
        bad = ArmTask("ball-roll-gc", InProcessTransport(fail), goal=(0.7, 0.1))
        with pytest.raises(TrialFailed, match=fail):
            bad.rollout(bad.instance, [0.0, 0.05, 0.3])


def test_driver_loop_is_the_simulation_loop(tmp_path):
    """run_method on the adapter (in-process transport) = run_method on the MuJoCo task."""
    from icpi.core import ScriptedSampler
    from icpi.core.samplers import copy_nearest_example
    from icpi.manipulation.dataset import ImprovementDataset
    from icpi.manipulation.run import RunConfig, run_method

    cfg = RunConfig(task="ball-roll-gc", method="icpi", seed=0, iterations=4, dataset_size=60)
    task = ArmTask("ball-roll-gc", InProcessTransport(), goal=(0.7, 0.1), physics=[0.065, 0.0035])
    s_arm = run_method(
        cfg,
        tmp_path / "arm",
        sampler=ScriptedSampler(copy_nearest_example),
        task=task,
        instance=task.instance,
    )
    sim = make_task("ball-roll-gc")
    s_sim = run_method(
        cfg,
        tmp_path / "sim",
        sampler=ScriptedSampler(copy_nearest_example),
        task=sim,
        instance=task.instance,
    )
    assert isinstance(ScriptedSampler(copy_nearest_example), ScriptedSampler)
    arm_rec = [json.loads(x) for x in open(tmp_path / "arm" / "records.jsonl")]
    sim_rec = [json.loads(x) for x in open(tmp_path / "sim" / "records.jsonl")]
    assert [r["theta"] for r in arm_rec] == [r["theta"] for r in sim_rec]
    assert s_arm["final_cost"] == pytest.approx(s_sim["final_cost"])
    assert sorted(p.name for p in (tmp_path / "arm").iterdir()) == sorted(
        p.name for p in (tmp_path / "sim").iterdir()
    )
    ds = relabel_rollouts(task, task.rollouts, tmp_path / "relabelled")
    loaded = ImprovementDataset.load(tmp_path / "relabelled", task_id="ball-roll-gc")
    assert len(loaded) == len(ds) > 0 and loaded.meta["source"] == "real-arm"
    with pytest.raises(ValueError):
        relabel_rollouts(task, task.rollouts[:1])
