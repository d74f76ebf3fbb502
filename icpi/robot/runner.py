"""One trial from request to result: the skill node's logic, without ROS.

:class:`SkillRunner` receives joint states, ball points and e-stop events from any thread
(the node's callbacks) and runs one trial at a time on the caller's thread (the node's
worker thread):

1. refuse when the e-stop is engaged, θ is outside its bounds (the arm never clips), or
   Δθ from the last completed trial leaves the trust region;
2. wait for fresh joint states; if the arm is not home, move it home first (checked);
3. plan the trial trajectory and check it against position, speed, acceleration, jerk and
   workspace limits;
   refuse it on any violation; abort without moving when the camera is stale;
4. send it, then watch: the e-stop halts at once (a stop along the path) and the
   trial ends ``estopped``; stale joint states or a stale ball track abort it (stop,
   ``aborted``); a trajectory whose end is not reached in time aborts it. Staleness
   and the ball's track (its rest window) are judged on the controller's clock from the
   messages' header stamps (the twin's simulated time under ``use_sim_time``: a twin
   starved of CPU slows that clock instead of tripping the watchdog); the timeouts
   (``motion_timeout``, ``settle_timeout``) run on the steady clock, so a graph whose
   clock stops still ends the trial;
5. wait for the ball to rest, judged on ball points received after the motion ended
   (a lagging camera cannot report the start spot); outcome = rest position,
   e = outcome − goal, cost = ‖e‖;
6. return home (checked like every trajectory) and report; a ball that rests within
   ``min_ball_travel`` of where it started ends the trial ``no_motion`` (no outcome).

Ball points in any frame but ``task_frame`` are refused (the watchdog's reason names
their frame). Where the arm's driver publishes them, a speed scaling below full
(``speed_scaling_topic``), a stopped robot program (``program_running_topic``), a UR robot
mode but RUNNING or safety mode but NORMAL (a protective stop; ``robot_mode_topic``,
``safety_mode_topic``) or a Franka robot mode but MOVE (a reflex; ``franka_state_topic``)
refuses a trial before it moves and aborts it (stop) while it moves.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from icpi.robot.contract import TrialRequest, TrialResult
from icpi.robot.params import SkillNodeConfig
from icpi.robot.skill import (
    CONTROLLER_MODELS,
    Plan,
    State,
    TimedPlan,
    Unreachable,
    held_at_start,
    plan_move,
    plan_trial,
    skill_task,
    stop_plan,
    trust_region_violation,
)
from icpi.robot.track import BallTrack, Watchdog

log = logging.getLogger(__name__)

JOINTS = "joint_states"
BALL = "ball_track"
# Poll period of the trial thread [s].
POLL_S = 0.005
# Consecutive joint states within tolerance for a target to count as reached.
REACHED_COUNT = 3


# The arm drivers' modes (vendor/ur_dashboard_msgs, vendor/franka_msgs: the constants of
# the messages), by value; a trial runs only in the first of each.
UR_ROBOT_MODES = {
    7: "RUNNING",
    -1: "NO_CONTROLLER",
    0: "DISCONNECTED",
    1: "CONFIRM_SAFETY",
    2: "BOOTING",
    3: "POWER_OFF",
    4: "POWER_ON",
    5: "IDLE",
    6: "BACKDRIVE",
    8: "UPDATING_FIRMWARE",
}
UR_SAFETY_MODES = {
    1: "NORMAL",
    2: "REDUCED",
    3: "PROTECTIVE_STOP",
    4: "RECOVERY",
    5: "SAFEGUARD_STOP",
    6: "SYSTEM_EMERGENCY_STOP",
    7: "ROBOT_EMERGENCY_STOP",
    8: "VIOLATION",
    9: "FAULT",
    10: "VALIDATE_JOINT_ID",
    11: "UNDEFINED_SAFETY_MODE",
    12: "AUTOMATIC_MODE_SAFEGUARD_STOP",
    13: "SYSTEM_THREE_POSITION_ENABLING_STOP",
}
FRANKA_ROBOT_MODES = {
    2: "MOVE",
    0: "OTHER",
    1: "IDLE",
    3: "GUIDING",
    4: "REFLEX",
    5: "USER_STOPPED",
    6: "AUTOMATIC_ERROR_RECOVERY",
}
# What each mode table is, for the reasons: the config field of its topic, and words.
_MODE_SOURCES = {
    "robot_mode_topic": ("UR robot mode", UR_ROBOT_MODES),
    "safety_mode_topic": ("UR safety mode", UR_SAFETY_MODES),
    "franka_state_topic": ("Franka robot mode", FRANKA_ROBOT_MODES),
}


class ClockRate:
    """How fast the controller's clock runs against the steady clock (sim s per wall s).

    Leads cover the transport of a trajectory, which takes wall time; on a simulated
    clock that runs ``time_scale`` times faster they must be that much longer in
    controller time. The rate is measured over windows of at least ``window`` wall seconds
    (1 until the first window closes; a clock that jumps back starts a new window).
    """

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self.rate = 1.0
        self._ref: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def sample(self, wall: float, controller: float) -> None:
        """Record both clocks at one moment (any thread).

        Args:
            wall: Steady clock [s].
            controller: Controller clock [s].
        """
        with self._lock:
            if self._ref is None or controller < self._ref[1]:
                self._ref = (wall, controller)
                return
            span = wall - self._ref[0]
            if span >= self.window:
                measured = (controller - self._ref[1]) / span
                if measured > 0:
                    self.rate = min(max(measured, 1e-3), 1e3)
                self._ref = (wall, controller)


def _stamped(stamp: float, now: float) -> float:
    """When a message was taken, on the controller's clock: its stamp, never after now."""
    return min(stamp, now) if stamp > 0 else now


class TrialStop(Exception):
    """A trial ends early; carries the result status and reason."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SkillRunner:
    """Runs trials on an arm reached through ``send`` (see the module docstring)."""

    def __init__(
        self,
        cfg: SkillNodeConfig,
        send: Callable[[Plan, Callable[[], float]], float],
        clock: Callable[[], float] = time.monotonic,
        controller_clock: Callable[[], float] | None = None,
        controller_fault: Callable[[], str | None] | None = None,
    ) -> None:
        """Set up the runner.

        Args:
            cfg: Skill node parameters.
            send: Sends a joint trajectory to the arm's controller; it calls the given
                function for the start time on the controller's clock (the message's
                header stamp) just before publishing, and returns that time.
            clock: Steady clock of the timeouts [s].
            controller_clock: The controller's clock [s] (simulated time under
                ``use_sim_time``), on which sent trajectories run and staleness is
                judged; default ``clock``.
            controller_fault: Why the controller failed the last trajectory sent, or
                ``None`` (a FollowJointTrajectory client: rejected, aborted, silent).
                With it, the controller's answer ends a motion that fails: its goal
                carries ``motion_timeout`` as the goal time tolerance, so the node's own
                deadline is only a backstop, ``motion_timeout`` later still.

        Raises:
            ValueError: On an inconsistent configuration.
        """
        self.cfg = cfg
        self.arm = cfg.arm()
        self.limits = cfg.limits()
        self.timing = cfg.timing()
        self.spec = skill_task(cfg.skill).theta_spec
        if cfg.controller_model not in CONTROLLER_MODELS:
            raise ValueError(
                f"controller_model must be one of {CONTROLLER_MODELS}, got {cfg.controller_model!r}"
            )
        if len(cfg.trust_region) != self.spec.dim:
            raise ValueError(f"trust_region needs {self.spec.dim} values (one per θ)")
        self.home = np.asarray(cfg.home, dtype=np.float64)
        self.goal_dim = 2
        self._send = send
        self.clock = clock
        self.controller_clock = controller_clock or clock
        self.controller_fault = controller_fault
        # Extra time before the node's own deadline: the controller's comes first.
        self._backstop = cfg.motion_timeout if controller_fault is not None else 0.0
        self.clock_rate = ClockRate()
        self.track = BallTrack(cfg.rest_rule())
        self.watchdog = Watchdog({JOINTS: cfg.joint_state_timeout, BALL: cfg.ball_timeout})
        self._cond = threading.Condition()
        self._q: np.ndarray | None = None
        self._q_seq = 0
        self._estop = False
        self._estop_reason = ""
        self._busy = False
        # The trajectory the controller runs (its reference), as sent by this runner.
        self._active: TimedPlan | None = None
        # Lockstep (simulation): no trajectory starts before the granted time; count sent.
        self._granted = -math.inf
        self.sent = 0
        self.last_theta: np.ndarray | None = None
        # The arm's driver (where it publishes them): speed scaling, program running.
        self._scaling: float | None = None
        self._running: bool | None = None
        self._modes: dict[str, int] = {}  # by the config field of the topic
        self._wrong_frame = ""  # the frame of the last ball point refused for its frame
        self.ignored = 0
        self.trials = 0

    # ------------------------------------------------------------------ inputs
    def on_joint_state(
        self,
        names: Sequence[str],
        positions: Sequence[float],
        velocities: Sequence[float],
        stamp: float = 0.0,
    ) -> str | None:
        """Take a joint state (any thread).

        Args:
            names: Joint names of the message.
            positions: Positions, one per name.
            velocities: Velocities, one per name, or empty.
            stamp: Header stamp on the controller's clock [s] (0: unstamped, now).

        Returns:
            Why the message was ignored, or ``None`` when it was used.
        """
        if len(positions) != len(names) or (velocities and len(velocities) != len(names)):
            return self._ignore(
                f"joint state arrays disagree: {len(names)} names,"
                f" {len(positions)} positions, {len(velocities)} velocities"
            )
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.cfg.joint_names if n not in index]
        if missing:
            return self._ignore(f"joint state lacks joints {missing}")
        q = np.array([float(positions[index[n]]) for n in self.cfg.joint_names])
        if not np.all(np.isfinite(q)):
            return self._ignore(f"joint state holds NaN or inf: {q.tolist()}")
        m = self.cfg.joint_state_margin
        lo = np.asarray(self.limits.position_lower) - m
        hi = np.asarray(self.limits.position_upper) + m
        if np.any(q < lo) or np.any(q > hi):
            return self._ignore(f"joint state {q.tolist()} is out of range")
        ctrl = self.controller_clock()
        self.clock_rate.sample(self.clock(), ctrl)
        with self._cond:
            self._q = q
            self._q_seq += 1
            self.watchdog.feed(JOINTS, _stamped(stamp, ctrl))
            self._cond.notify_all()
        return None

    def on_ball(
        self, xyz: Sequence[float], stamp: float = 0.0, frame: str | None = None
    ) -> str | None:
        """Take a ball point from the camera (any thread).

        Args:
            xyz: Ball position in the task frame [m].
            stamp: Header stamp (capture time) on the controller's clock [s] (0:
                unstamped, now).
            frame: The point's frame_id (``None``: taken as the task frame); points in
                any other frame are refused.

        Returns:
            Why the point was ignored, or ``None`` when it was used.
        """
        if frame is not None and frame != self.cfg.task_frame:
            self._wrong_frame = frame
            return self._ignore(
                f"ball point in frame {frame!r}, not the task frame {self.cfg.task_frame!r}"
            )
        p = [float(v) for v in xyz]
        if len(p) != 3 or not all(math.isfinite(v) for v in p):
            return self._ignore(f"ball point is not 3 finite numbers: {p}")
        x0, x1, y0, y1 = self.cfg.ball_box
        if not (x0 <= p[0] <= x1 and y0 <= p[1] <= y1):
            return self._ignore(f"ball point ({p[0]:.3f}, {p[1]:.3f}) is outside ball_box")
        t = _stamped(stamp, self.controller_clock())
        self.track.add(t, p)
        self.watchdog.feed(BALL, t)
        return None

    def on_speed_scaling(self, value: float) -> None:
        """Take the arm's speed scaling (any thread; ``speed_scaling_full`` is full speed)."""
        self._scaling = float(value)

    def on_program_running(self, running: bool) -> None:
        """Take whether the arm's program runs (any thread)."""
        self._running = bool(running)

    def on_mode(self, topic_field: str, mode: int) -> None:
        """Take a mode the arm's driver publishes (any thread).

        Args:
            topic_field: The config field of the topic it came on: ``robot_mode_topic``
                (UR robot mode), ``safety_mode_topic`` (UR safety mode) or
                ``franka_state_topic`` (Franka robot mode).
            mode: The mode's value.

        Raises:
            KeyError: On an unknown topic field.
        """
        if topic_field not in _MODE_SOURCES:
            raise KeyError(f"no driver mode comes on {topic_field}")
        self._modes[topic_field] = int(mode)

    def arm_fault(self) -> str | None:
        """Why the arm's driver cannot run a timed trial now, or ``None``.

        Read from the driver's topics where configured: the UR robot and safety modes, the
        Franka robot mode, the robot program, the speed scaling.
        """
        cfg = self.cfg
        for field, (what, names) in _MODE_SOURCES.items():
            topic = getattr(cfg, field)
            if not topic:
                continue
            mode = self._modes.get(field)
            if mode is None:
                return f"no {what} received on {topic}"
            ok = next(iter(names))
            if mode != ok:
                name = names.get(mode, f"unknown ({mode})")
                return f"{what} is {name}, not {names[ok]} ({topic})"
        if cfg.program_running_topic and self._running is not True:
            said = "nothing received" if self._running is None else "false"
            return f"the robot program is not running ({cfg.program_running_topic}: {said})"
        if cfg.speed_scaling_topic:
            if self._scaling is None:
                return f"no speed scaling received on {cfg.speed_scaling_topic}"
            full = cfg.speed_scaling_full
            if not self._scaling >= full * (1.0 - 1e-6):
                return (
                    f"speed scaling {100.0 * self._scaling / full:.1f} % < 100 %: the skill's"
                    " timing would change (protective or reduced mode, or the slider)"
                )
        return None

    def _camera_why(self, stale: list[str]) -> str:
        """The ball watchdog's reason, naming the frame of refused points if any."""
        why = "; ".join(stale)
        if self._wrong_frame:
            why += (
                f" (ball points arrived in frame {self._wrong_frame!r}, not the task frame"
                f" {self.cfg.task_frame!r})"
            )
        return why

    def _ignore(self, why: str) -> str:
        self.ignored += 1
        return why

    # ------------------------------------------------------------------ e-stop
    @property
    def estopped(self) -> bool:
        """Whether the e-stop is engaged."""
        return self._estop

    @property
    def busy(self) -> bool:
        """Whether a trial is running."""
        return self._busy

    def state(self) -> str:
        """``estopped``, ``busy``, ``no_joint_states``, ``no_camera``, ``arm_fault`` or ``idle``.

        ``arm_fault``: the arm's driver says a trial cannot run now (:meth:`arm_fault`: a
        protective stop, a reflex, a stopped program, reduced speed); ``idle``: ready.
        """
        if self._estop:
            return "estopped"
        if self._busy:
            return "busy"
        now = self.controller_clock()
        if self.watchdog.stale(now, [JOINTS]):
            return "no_joint_states"
        if self.watchdog.stale(now, [BALL]):
            return "no_camera"
        if self.arm_fault() is not None:
            return "arm_fault"
        return "idle"

    def engage_estop(self, reason: str = "e-stop") -> str:
        """Halt the arm at once and refuse trials until :meth:`clear_estop` (any thread).

        Args:
            reason: Recorded in the results of the stopped and refused trials.

        Returns:
            What the stop did (see :meth:`_stop_locked`).
        """
        with self._cond:  # under the lock: no trajectory can slip out after the stop
            first = not self._estop
            self._estop = True
            self._estop_reason = reason
            stopped = self._stop_locked(reason)
            self._cond.notify_all()
        if first:
            log.warning("e-stop engaged (%s): arm halted, trials refused until cleared", reason)
        return stopped

    def clear_estop(self) -> None:
        """Allow trials again (the next trial first moves the arm home)."""
        with self._cond:
            self._estop = False
            self._estop_reason = ""
        log.info("e-stop cleared")

    # ------------------------------------------------------------------ trials
    def try_reserve(self) -> bool:
        """Claim the runner for one trial; ``False`` when a trial is already running."""
        with self._cond:
            if self._busy:
                return False
            self._busy = True
            return True

    def run(self, req: TrialRequest) -> TrialResult:
        """Run one trial (blocking; call :meth:`try_reserve` first).

        Args:
            req: The request.

        Returns:
            The result (never raises for trial failures: they become a status).
        """
        t0 = self.clock()
        timing: dict[str, float] = {}
        base = TrialResult(req.trial_id, "ok", theta=list(req.theta), goal=list(req.goal))
        try:
            result = self._run(req, base, timing)
        except TrialStop as stop:
            base.status, base.reason = stop.status, stop.reason
            if stop.status != "refused":
                log.warning("trial %d %s: %s", req.trial_id, stop.status, stop.reason)
            else:
                log.info("trial %d refused: %s", req.trial_id, stop.reason)
            result = base
        except Exception as err:  # a bug must not kill the node: report and carry on
            log.exception("trial %d failed", req.trial_id)
            self._halt()
            base.status, base.reason = "aborted", f"internal error: {err}"
            result = base
        finally:
            with self._cond:
                self._busy = False
        timing["total_s"] = self.clock() - t0
        result.timing = timing
        self.trials += 1
        return result

    def _run(self, req: TrialRequest, res: TrialResult, timing: dict[str, float]) -> TrialResult:
        self._check_estop()
        theta, clipped = self.spec.validate(req.theta)
        if clipped:
            raise TrialStop(
                "refused",
                f"θ {list(req.theta)} is outside its bounds {list(self.spec.low)}.."
                f"{list(self.spec.high)} (the arm never clips θ)",
            )
        if len(req.goal) != self.goal_dim:
            raise TrialStop("malformed", f"goal must have {self.goal_dim} numbers")
        why = trust_region_violation(theta, self.last_theta, self.cfg.trust_region)
        if why:
            raise TrialStop("refused", why)
        fault = self.arm_fault()  # before anything moves, the move home included
        if fault:
            raise TrialStop("refused", fault)
        t = self.clock()
        start = self._start_state()
        if float(np.max(np.abs(start.position - self.home))) > self.cfg.position_tolerance:
            self._move_home(start, "before the trial")
            start = self._start_state()
        timing["home_before_s"] = self.clock() - t
        try:
            plan = self._for_controller(
                plan_trial(self.cfg.skill, theta, self.arm, start, self.timing)
            )
        except Unreachable as err:
            raise TrialStop("refused", f"stroke out of reach: {err}") from err
        violations = self.limits.check_plan(self.arm, plan)
        if violations:
            raise TrialStop("refused", "trajectory violates limits: " + "; ".join(violations))
        stale = self.watchdog.stale(self.controller_clock(), [BALL])
        if stale:
            raise TrialStop("aborted", "camera stale before the trial: " + self._camera_why(stale))
        # ---- motion
        self.track.clear()
        t_send, c_send = self.clock(), self.controller_clock()
        self._send_unless_estopped(plan)
        self._wait_reached(plan, watch_ball=True)
        t_motion, c_motion = self.clock(), self.controller_clock()
        timing["motion_s"] = t_motion - t_send
        # ---- settle (the track on the controller's clock; the deadline on the steady one)
        deadline = t_motion + self.cfg.settle_timeout
        rest = None
        while rest is None:
            self._wait(POLL_S)
            self._check_all(watch_ball=True)
            rest = self.track.rest_position(self.controller_clock(), since=c_motion)
            if rest is None and self.clock() > deadline:
                self._halt()
                raise TrialStop(
                    "aborted", f"the ball did not come to rest within {self.cfg.settle_timeout} s"
                )
        timing["settle_s"] = self.clock() - t_motion
        outcome = rest[:2]
        goal = np.asarray(req.goal, dtype=np.float64)
        error = outcome - goal
        tt, pp = self.track.array(since=c_send)
        # Did the ball move: its farthest point of the trial from where it rests.
        travel = float(np.max(np.linalg.norm(pp[:, :2] - outcome, axis=1))) if len(pp) else 0.0
        still = travel < self.cfg.min_ball_travel
        rows = np.column_stack([tt - c_send, pp]).tolist()
        rows.append([self.controller_clock() - c_send, *rest.tolist()])
        res.track = rows
        if not still:
            res.outcome, res.e = outcome.tolist(), error.tolist()
            res.cost = float(np.linalg.norm(error))
        self.last_theta = theta
        # ---- home
        t = self.clock()
        try:
            self._move_home(self._start_state(), "after the trial")
        except TrialStop as stop:
            # The trial is scored; the next one moves home first.
            log.warning("trial %d: return home failed (%s)", req.trial_id, stop.reason)
            if stop.status == "estopped":
                raise
        timing["home_after_s"] = self.clock() - t
        if still:  # no outcome: never scored, never relabelled
            raise TrialStop(
                "no_motion",
                f"the ball moved {1e3 * travel:.1f} mm (less than min_ball_travel"
                f" {1e3 * self.cfg.min_ball_travel:.1f} mm): the strike missed it",
            )
        return res

    # ------------------------------------------------------------------ helpers
    def _wait(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait(timeout=seconds)

    def _send_unless_estopped(self, plan: Plan) -> None:
        with self._cond:  # atomic with engage_estop: sent before its stop, or not at all
            self._check_estop()
            if self._active is not None and self._active.moving_at(self._start_time()):
                raise TrialStop("aborted", "a trajectory is still running")
            self._send_locked(plan)

    def _start_time(self, lead: float | None = None) -> float:
        """When a trajectory sent now starts on the controller's clock.

        ``lead`` (default ``trajectory_lead``) wall seconds ahead, the time for it to
        arrive, converted to the controller's clock at its measured rate, on the
        ``sample_dt`` grid.
        """
        dt = self.timing.sample_dt
        ahead = self._ahead(self.cfg.trajectory_lead if lead is None else lead)
        start = math.ceil((self.controller_clock() + ahead) / dt - 1e-6) * dt
        return max(start, self._granted)  # never before the time granted to the twin

    def _ahead(self, lead: float) -> float:
        """A lead of ``lead`` wall seconds on the controller's clock [controller s].

        The lead times the clock's measured rate, and never less than ``lead`` controller
        seconds: on a clock slower than the wall (a twin starved of CPU) that is more wall
        time than the transport needs, and a lockstep twin always has a grant ahead to
        advance into. (Scaled by the measured rate alone, a twin slower than
        ``sample_dt / lead`` of real time got grants that no longer reached past its own
        clock and froze for good: issue 24, a camera twin on one loaded core.)
        """
        return lead * max(self.clock_rate.rate, 1.0)

    def grant(self) -> tuple[float, int]:
        """The controller time up to which nothing new will start, for the twin in lockstep.

        The simulated arm advances its clock only up to the latest grant whose count of
        trajectories it has received (``lockstep``): a trajectory is never late however
        slowly the graph runs. The grant is the shorter lead (``trajectory_lead``,
        ``stop_lead``) ahead of the controller's clock; every later trajectory starts at
        it or after it.

        Returns:
            ``(granted time [s], trajectories sent so far)``.
        """
        lead = self._ahead(min(self.cfg.trajectory_lead, self.cfg.stop_lead))
        dt = self.timing.sample_dt
        with self._cond:
            now = self.controller_clock()
            if now < self._granted - 2.0 * lead - 1.0:  # the clock went back: a new twin
                self._granted = -math.inf
            until = math.floor((now + lead) / dt + 1e-6) * dt
            self._granted = max(self._granted, until)
            return self._granted, self.sent

    def _send_locked(self, plan: Plan, start: Callable[[], float] | None = None) -> None:
        stamp = self._send(plan, start or self._start_time)
        self._active = TimedPlan(plan, stamp)
        self.sent += 1

    def _stop_locked(self, why: str) -> str:
        """Decelerate the controller's reference to rest within limits (lock held).

        Returns:
            ``stopping`` (a stop was sent), ``at_rest`` (nothing moves or was sent: the
            controller holds) or ``unstoppable`` (no stop within the limits: the running
            trajectory, checked when it was sent, is left to finish).
        """
        if self._active is None:
            return "at_rest"  # nothing was sent: the controller holds its own position
        lead = self.cfg.stop_lead
        for _ in range(2):
            start = self._start_time(lead)  # until then the running one goes on
            jtc_from = None
            if self.cfg.controller_model == "jtc":
                # The earliest it may arrive: now, less a lead for a controller clock
                # behind ours.
                jtc_from = self.controller_clock() - self._ahead(lead)
            t0 = self.clock()
            stop, violations = stop_plan(
                self._active, start, self.arm, self.limits, self.timing.sample_dt, jtc_from
            )
            spent = self.clock() - t0
            if spent < 0.5 * lead:
                break
            # Planning took most of the lead (a loaded machine): the stop would arrive
            # late. Plan again for a start that leaves the lead after the planning.
            log.warning("%s: the stop took %.0f ms to plan; planned again", why, 1e3 * spent)
            lead = self.cfg.stop_lead + 2.0 * spent
        if stop is not None:
            self._send_locked(stop.plan, lambda: stop.sent_at)
            braking = stop.sent_at + stop.plan.duration - start
            log.info("%s: stopping along the path in %.3f s", why, braking)
            return "stopping"
        if violations:
            log.error(
                "%s: no stop within the limits (%s); the running trajectory, checked before"
                " it was sent, is left to finish",
                why,
                "; ".join(violations),
            )
            return "unstoppable"
        return "at_rest"

    def _for_controller(self, plan: Plan) -> Plan:
        """A plan from rest as sent: under ``jtc`` held at its start (:func:`held_at_start`)."""
        return held_at_start(plan) if self.cfg.controller_model == "jtc" else plan

    def _start_state(self) -> State:
        """Where the controller is, at rest, before a new trajectory (fresh joint states).

        The reference of the last trajectory sent when it has ended and the arm is
        within ``position_tolerance`` of it; otherwise (nothing sent yet, or the arm was
        moved by someone else) the measured position. Under ``jtc`` always the measured
        position: the controller takes the next trajectory over from there.
        """
        with self._cond:
            active = self._active
        if active is not None:  # let it end (the arm reached it within the tolerance)
            deadline = (
                self.clock() + active.plan.duration + self.cfg.motion_timeout + self._backstop
            )
            while active.moving_at(self.controller_clock()):
                self._check_all(watch_ball=False)
                if self.clock() > deadline:
                    self._halt()
                    raise TrialStop("aborted", "the previous trajectory did not end in time")
                self._wait(POLL_S)
        q = self._fresh_joints()
        if active is not None and self.cfg.controller_model != "jtc":
            # (jtc starts a trajectory from the measured position: plan from there.)
            ref = active.state_at(self.controller_clock())
            if float(np.max(np.abs(ref.position - q))) <= self.cfg.position_tolerance:
                return ref
        return State.at_rest(q)

    def _check_estop(self) -> None:
        if self._estop:
            raise TrialStop("estopped", f"e-stop engaged ({self._estop_reason})")

    def _check_all(self, watch_ball: bool) -> None:
        self._check_estop()
        names = [JOINTS, BALL] if watch_ball else [JOINTS]
        stale = self.watchdog.stale(self.controller_clock(), names)
        if stale:
            self._halt()
            raise TrialStop("aborted", "watchdog: " + self._camera_why(stale))
        fault = self.arm_fault()
        if fault:
            self._halt()
            raise TrialStop("aborted", fault)
        fault = self.controller_fault() if self.controller_fault is not None else None
        if fault:
            self._halt()
            raise TrialStop("aborted", f"controller: {fault}")

    def _halt(self, why: str = "abort") -> None:
        with self._cond:
            self._stop_locked(why)

    def _fresh_joints(self) -> np.ndarray:
        deadline = self.clock() + self.cfg.joint_state_timeout
        while True:
            self._check_estop()
            with self._cond:
                q = self._q
            if q is not None and not self.watchdog.stale(self.controller_clock(), [JOINTS]):
                return q.copy()
            if self.clock() > deadline:
                stale = self.watchdog.stale(self.controller_clock(), [JOINTS])
                raise TrialStop("aborted", "no fresh joint states: " + "; ".join(stale))
            self._wait(POLL_S)

    def _move_home(self, start: State, when: str) -> None:
        plan = self._for_controller(
            plan_move(start, self.home, self.timing.return_duration, self.timing.sample_dt)
        )
        violations = self.limits.check_plan(self.arm, plan)
        if violations:
            raise TrialStop(
                "refused", f"the move home {when} violates limits: " + "; ".join(violations)
            )
        self._send_unless_estopped(plan)
        self._wait_reached(plan, watch_ball=False)

    def _wait_reached(self, plan: Plan, watch_ball: bool) -> None:
        target = plan.end
        limit = plan.duration + self.cfg.motion_timeout + self._backstop
        deadline = self.clock() + limit
        seen = self._q_seq
        count = 0
        while count < REACHED_COUNT:
            self._wait(POLL_S)
            self._check_all(watch_ball)
            with self._cond:
                q, seq = self._q, self._q_seq
            if q is not None and seq != seen:
                seen = seq
                near = float(np.max(np.abs(q - target))) <= self.cfg.position_tolerance
                count = count + 1 if near else 0
            if self.clock() > deadline:
                self._halt()
                raise TrialStop(
                    "aborted",
                    f"the arm did not reach the trajectory's end within {limit:.1f} s",
                )
