"""θ → joint trajectory for the arm, and the checks every trajectory must pass before it is sent.

## Arm model
The effector moves in the table plane, in the *task frame*: its origin is the ball's (or
puck's) start spot, x points along the nominal strike, z is up; the goal, the camera's
ball points and the outcome are all in this frame. Two kinematic models are offered:

| ``kinematics`` | joints | forward kinematics |
|---|---|---|
| ``planar_2r`` | shoulder q1, elbow q2 [rad] | p = b + l1·u(q1) + l2·u(q1+q2) |
| ``cartesian_xy`` | x, y prismatic [m] (a gantry) | p = b + (q1, q2) |

with u(a) = (cos a, sin a), b = ``base_xy`` [m] and l1, l2 = ``link_lengths`` [m];
``elbow`` (+1 / −1) picks the inverse-kinematics branch. Serial N-joint arms (a UR5e, a
Panda, any MJCF or URDF model) holding their effector at a fixed height and orientation
are :class:`icpi.robot.kinematics.SerialArm` (``kinematics: serial``); every model offers
the :class:`Kinematics` interface.

## Skill → stroke
Each skill is a straight minimum-jerk stroke of the effector, exactly as in the MuJoCo
twin: the task's own :meth:`icpi.envs.base.Task.stroke` (written once, in ``envs/``):

| skill | θ | setback behind the object [m] | travel [m] | duration [s] |
|---|---|---|---|---|
| ``ball-roll-gc`` | angle, backswing b, T | r_ball + r_striker + b | 2b | T |
| ``slide``, ``slide-gc`` | angle, distance d, T | r_puck + r_pusher + gap | d | T |

## Trial trajectory
A :class:`Plan` is what the controller runs: knots with positions, velocities and
accelerations, joined by quintic segments, from the current state at t = 0: a joint-space
minimum-jerk approach from home to the stroke start (``approach_duration``, one
segment), a ``dwell`` at rest (one), the stroke (a knot every ``sample_dt``) and a
``hold`` at its end (one). Approach + dwell is rounded up to a whole number of samples so
that the stroke's knots fall on the twin's physics steps when ``sample_dt`` equals them.
Every limit is checked on samples of that curve every ``sample_dt``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike
from scipy.interpolate import PPoly, make_interp_spline

from icpi.envs import make_task
from icpi.envs.base import Task, min_jerk

KINEMATICS = ("planar_2r", "cartesian_xy")  # closed form; "serial": icpi.robot.kinematics
SKILLS = ("ball-roll-gc", "slide", "slide-gc")  # tasks whose stroke an arm can make
# How a controller takes a new trajectory over (icpi.robot.twin's docstring): at its header
# stamp from the desired state, or as ros2_controllers' joint_trajectory_controller does.
CONTROLLER_MODELS = ("stamp", "jtc")
# jtc: the arrivals checked are samples of a continuous window; their first segment keeps
# this fraction of each limit, for the arrivals in between.
ARRIVAL_MARGIN = 0.98
# jtc: arrivals checked across a stop's window.
ARRIVALS = 11
# Tolerance of the time grid [s].
_TIME_EPS = 1e-9


class Unreachable(ValueError):
    """A point of the stroke lies outside the arm's reach."""


@dataclass(frozen=True)
class ArmModel:
    """Kinematics of the effector in the table plane (see the module docstring)."""

    kinematics: str = "planar_2r"
    """``planar_2r`` or ``cartesian_xy``."""
    base_xy: tuple[float, float] = (-0.5, 0.0)
    """Arm base (planar) or gantry origin (cartesian) in the task frame [m]."""
    link_lengths: tuple[float, float] = (0.35, 0.35)
    """Upper arm and forearm length [m] (planar only)."""
    elbow: int = 1
    """Inverse-kinematics branch: +1 elbow left of the base→effector line, −1 right."""

    def __post_init__(self) -> None:
        if self.kinematics not in KINEMATICS:
            raise ValueError(f"kinematics must be one of {KINEMATICS}, got {self.kinematics!r}")
        if self.elbow not in (1, -1):
            raise ValueError(f"elbow must be +1 or -1, got {self.elbow}")
        if self.kinematics == "planar_2r" and min(self.link_lengths) <= 0:
            raise ValueError(f"link lengths must be positive, got {self.link_lengths}")

    @property
    def n_joints(self) -> int:
        """Number of joints (2 for both models)."""
        return 2

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Effector position of joint positions.

        Args:
            q: Joint positions, shape (2,) or (N, 2).

        Returns:
            Effector xy in the task frame [m], same leading shape.
        """
        q = np.asarray(q, dtype=np.float64)
        base = np.asarray(self.base_xy, dtype=np.float64)
        if self.kinematics == "cartesian_xy":
            shifted: np.ndarray = base + q
            return shifted
        l1, l2 = self.link_lengths
        q1, q12 = q[..., 0], q[..., 0] + q[..., 1]
        x = l1 * np.cos(q1) + l2 * np.cos(q12)
        y = l1 * np.sin(q1) + l2 * np.sin(q12)
        out: np.ndarray = base + np.stack([x, y], axis=-1)
        return out

    def fk_xyz(self, q: np.ndarray) -> np.ndarray:
        """Effector xyz (z = 0: the model lies in the table plane), same leading shape."""
        xy = self.fk(q)
        return np.concatenate([xy, np.zeros_like(xy[..., :1])], axis=-1)

    def ik(self, xy: np.ndarray, seed: np.ndarray | None = None) -> np.ndarray:
        """Joint positions that put the effector at xy (closed form).

        Args:
            xy: Effector positions in the task frame [m], shape (2,) or (N, 2).
            seed: Unused (the closed form has one solution per ``elbow``).

        Returns:
            Joint positions, same leading shape.

        Raises:
            Unreachable: If a point is out of reach (planar arm).
        """
        p = np.asarray(xy, dtype=np.float64) - np.asarray(self.base_xy, dtype=np.float64)
        if self.kinematics == "cartesian_xy":
            return p.copy()
        l1, l2 = self.link_lengths
        r2 = np.sum(p * p, axis=-1)
        c2 = (r2 - l1 * l1 - l2 * l2) / (2.0 * l1 * l2)
        if np.any(np.abs(c2) > 1.0) or np.any(~np.isfinite(c2)):
            worst = float(np.sqrt(np.max(r2)))
            raise Unreachable(
                f"effector point at {worst:.3f} m from the base is outside the reach"
                f" [{abs(l1 - l2):.3f}, {l1 + l2:.3f}] m"
            )
        q2 = self.elbow * np.arccos(c2)
        q1 = np.arctan2(p[..., 1], p[..., 0]) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
        return np.stack([q1, q2], axis=-1)


class Kinematics(Protocol):
    """What the planner and the checks need of an arm: :class:`ArmModel` or a serial arm."""

    @property
    def n_joints(self) -> int:
        """Number of joints."""
        ...

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Effector xy in the task frame of joint positions (J,) or (N, J)."""
        ...

    def fk_xyz(self, q: np.ndarray) -> np.ndarray:
        """Effector xyz in the task frame of joint positions (J,) or (N, J)."""
        ...

    def ik(self, xy: np.ndarray, seed: np.ndarray | None = None) -> np.ndarray:
        """Joint positions for effector xy (2,) or (N, 2), in order from ``seed``."""
        ...


@dataclass(frozen=True)
class State:
    """A joint-space state of the controller's reference: position, velocity, acceleration."""

    position: np.ndarray
    """Joint positions [rad or m], (J,)."""
    velocity: np.ndarray
    """Joint velocities, (J,)."""
    acceleration: np.ndarray
    """Joint accelerations, (J,)."""

    @classmethod
    def at_rest(cls, position: ArrayLike) -> State:
        """A state at rest at ``position``."""
        q = np.asarray(position, dtype=np.float64).copy()
        return cls(q, np.zeros_like(q), np.zeros_like(q))


def _differences(t: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, ...]:
    """Speed, acceleration and jerk of sampled positions by finite differences."""
    v = np.diff(q, axis=0) / np.diff(t)[:, None]
    tv = 0.5 * (t[1:] + t[:-1])
    a = np.diff(v, axis=0) / np.diff(tv)[:, None]
    ta = 0.5 * (tv[1:] + tv[:-1])
    j = np.diff(a, axis=0) / np.diff(ta)[:, None]
    return v, a, j


def hermite_curve(times: np.ndarray, states: np.ndarray) -> PPoly:
    """The piecewise quintic through knots with positions, velocities and accelerations.

    The segment a controller interpolates between two such points (the quintic of
    ``joint_trajectory_controller``'s ``interpolate_between_points``), in the power basis.

    Args:
        times: Knot times (N,), increasing.
        states: Position, velocity and acceleration at each knot, (N, 3, J).

    Returns:
        The curve over [times[0], times[-1]].
    """
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(states, dtype=np.float64)
    return PPoly(_quintic(np.diff(t)[:, None], y[:-1], y[1:]), t)


def _quintic(h: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Power-basis coefficients (highest first) of the quintics from states a to states b.

    Args:
        h: Segment durations, (M, 1).
        a: Start states, (M, 3, J): position, velocity, acceleration.
        b: End states, same shape.

    Returns:
        Coefficients, (6, M, J).
    """
    p0, v0, a0 = a[:, 0], a[:, 1], a[:, 2]
    p1, v1, a1 = b[:, 0], b[:, 1], b[:, 2]
    dp = p1 - p0
    c3 = (20.0 * dp - (8.0 * v1 + 12.0 * v0) * h - (3.0 * a0 - a1) * h**2) / (2.0 * h**3)
    c4 = (-30.0 * dp + (14.0 * v1 + 16.0 * v0) * h + (3.0 * a0 - 2.0 * a1) * h**2) / (2.0 * h**4)
    c5 = (12.0 * dp - 6.0 * (v1 + v0) * h - (a0 - a1) * h**2) / (2.0 * h**5)
    return np.stack([c5, c4, c3, 0.5 * a0, v0, p0])


def _roots_in(coef: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Real roots in (0, h) of M polynomials, NaN-padded, shape (M, degree).

    Args:
        coef: Coefficients, highest power first, (degree + 1, M).
        h: Upper end of each polynomial's interval, (M,).
    """
    d, m = coef.shape[0] - 1, coef.shape[1]
    out = np.full((m, max(d, 0)), np.nan)
    if d <= 0:
        return out
    scale = np.abs(coef).max(axis=0)
    ok = np.abs(coef[0]) > 1e-12 * scale
    if np.any(ok):  # eigenvalues of the companion matrices
        comp = np.zeros((int(ok.sum()), d, d))
        comp[:, 0, :] = -(coef[1:, ok] / coef[0, ok]).T
        comp[:, np.arange(1, d), np.arange(d - 1)] = 1.0
        r = np.linalg.eigvals(comp)
        real = np.abs(r.imag) <= 1e-9 * np.maximum(1.0, np.abs(r.real))
        out[ok] = np.where(real, r.real, np.nan)
    lower = ~ok & (scale > 0)
    if np.any(lower) and d > 1:  # a vanishing leading coefficient: one degree less
        out[lower, : d - 1] = _roots_in(coef[1:, lower], h[lower])
    with np.errstate(invalid="ignore"):
        inside = (out > 0.0) & (out < h[:, None])
    return np.where(inside, out, np.nan)


def _derivative(coef: np.ndarray) -> np.ndarray:
    """Coefficients (highest power first, (n + 1, M)) of the derivative, (n, M)."""
    n = coef.shape[0] - 1
    return coef[:-1] * np.arange(n, 0, -1)[:, None]


def curve_peaks(curve: PPoly) -> list[tuple[np.ndarray, np.ndarray]]:
    """The largest |speed|, |acceleration| and |jerk| of each joint over a piecewise curve.

    Exact for polynomial segments: each derivative's extremes lie at a segment's ends or
    at a real root of the next derivative inside it (companion-matrix eigenvalues, all
    segments and joints at once); at a knot both one-sided limits count (the jerk of
    quintic segments may jump there).

    Args:
        curve: The controller's curve (per-joint polynomial segments).

    Returns:
        For speed, acceleration and jerk: ``(peak (J,), time of the peak (J,))``.
    """
    k, m, n_j = curve.c.shape
    coef = curve.c.reshape(k, m * n_j)  # segment-major columns: segment * J + joint
    h = np.repeat(np.diff(curve.x), n_j)
    x0 = np.repeat(curve.x[:-1], n_j)
    out = []
    for peak, at in _segment_peaks(coef, h, x0):
        peak, at = peak.reshape(m, n_j), at.reshape(m, n_j)
        seg = peak.argmax(axis=0)
        out.append((peak[seg, np.arange(n_j)], at[seg, np.arange(n_j)]))
    return out


def _segment_peaks(
    coef: np.ndarray, h: np.ndarray, x0: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """|speed|, |acceleration|, |jerk| peaks of M segments (coef (k, M) on [0, h]) and when."""
    m_all = coef.shape[1]
    derivs = [coef]
    for _ in range(4):
        derivs.append(_derivative(derivs[-1]) if derivs[-1].shape[0] > 1 else 0 * derivs[-1])
    out = []
    for order in (1, 2, 3):
        f = derivs[order]
        s = np.concatenate([np.zeros((m_all, 1)), h[:, None], _roots_in(derivs[order + 1], h)], 1)
        value = np.zeros_like(s)
        for row in f:  # Horner
            value = value * s + row[:, None]
        value = np.where(np.isnan(s), -np.inf, np.abs(value))
        best = value.argmax(axis=1)
        rows = np.arange(m_all)
        out.append((value[rows, best], x0 + s[rows, best]))
    return out


@dataclass(frozen=True)
class Limits:
    """What the arm may do; a trajectory that breaks any of these is refused."""

    position_lower: tuple[float, ...]
    """Lower joint position limit per joint [rad or m]."""
    position_upper: tuple[float, ...]
    """Upper joint position limit per joint [rad or m]."""
    velocity: tuple[float, ...]
    """Joint speed limit per joint [rad/s or m/s]."""
    acceleration: tuple[float, ...]
    """Joint acceleration limit per joint [rad/s² or m/s²]."""
    jerk: tuple[float, ...]
    """Joint jerk limit per joint [rad/s³ or m/s³]."""
    workspace: tuple[float, float, float, float]
    """Box the effector must stay inside: x_min, x_max, y_min, y_max in the task frame [m]."""
    min_height: float = -math.inf
    """Lowest effector height above the table [m] (a serial arm's approach may dip)."""

    def check(
        self, arm: Kinematics, times: np.ndarray, positions: np.ndarray, start: State
    ) -> list[str]:
        """Every violation of a sampled joint trajectory, as the controller will run it.

        Speed, acceleration and jerk are finite differences over the points the
        controller gets, joined to what it does around them: before t = 0 it follows
        ``start`` (its reference when the trajectory arrives: two points extrapolated
        from its position, velocity and acceleration), after the last point it holds.
        So a trajectory that starts from a moving reference, or ends in motion, is
        checked at its junctions too.

        Args:
            arm: The arm model (for the effector path).
            times: Time of each point from the start [s], shape (N,).
            positions: Joint positions, shape (N, J).
            start: The controller's reference at t = 0.

        Returns:
            Human-readable violations; empty when the trajectory is safe.
        """
        out: list[str] = []
        times = np.asarray(times, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.float64)
        n_j = len(self.velocity)
        if positions.ndim != 2 or positions.shape[1] != n_j or len(times) != len(positions):
            return [f"trajectory shape {positions.shape} does not match {n_j} joints"]
        if len(times) == 0:
            return ["empty trajectory"]
        if not (np.all(np.isfinite(times)) and np.all(np.isfinite(positions))):
            return ["trajectory holds NaN or inf"]
        all_t = np.concatenate([[0.0], times])
        if np.any(np.diff(all_t) <= _TIME_EPS):
            return ["trajectory times must increase strictly from 0"]
        out += self.check_positions(arm, times, positions)
        h0, h1 = times[0], times[-1] - times[-2] if len(times) > 1 else times[0]
        q0, v0, a0 = start.position, start.velocity, start.acceleration
        before = np.stack([q0 - 2 * h0 * v0 + 2 * h0 * h0 * a0, q0 - h0 * v0 + 0.5 * h0 * h0 * a0])
        t = np.concatenate([[-2 * h0, -h0, 0.0], times, [times[-1] + h1, times[-1] + 2 * h1]])
        q = np.vstack([before, q0, positions, positions[-1], positions[-1]])
        v, a, jerk = _differences(t, q)
        tv = 0.5 * (t[1:] + t[:-1])
        ta = 0.5 * (tv[1:] + tv[:-1])
        tj = 0.5 * (ta[1:] + ta[:-1])
        for name, values, at, limit, unit in (
            ("speed", v, tv, self.velocity, "/s"),
            ("acceleration", a, ta, self.acceleration, "/s²"),
            ("jerk", jerk, tj, self.jerk, "/s³"),
        ):
            over = np.abs(values) > np.asarray(limit) * (1.0 + 1e-9)
            for jj in np.flatnonzero(over.any(axis=0)):
                j = int(jj)
                k = int(np.argmax(np.abs(values[:, j])))
                out.append(
                    f"joint {j} {name} {abs(values[k, j]):.3f}{unit} at t={at[k]:.3f} s"
                    f" exceeds {limit[j]:.3f}{unit}"
                )
        return out

    def check_positions(
        self, arm: Kinematics, times: np.ndarray, positions: np.ndarray
    ) -> list[str]:
        """Violations of the joint position limits, the effector height and the workspace.

        Args:
            arm: The arm model.
            times: Time of each sample [s], (N,).
            positions: Joint positions, (N, J).

        Returns:
            Human-readable violations.
        """
        out: list[str] = []
        lo, hi = np.asarray(self.position_lower), np.asarray(self.position_upper)
        for j in range(positions.shape[1]):
            below, above = positions[:, j] < lo[j], positions[:, j] > hi[j]
            if np.any(below) or np.any(above):
                k = int(np.argmax(below | above))
                out.append(
                    f"joint {j} position {positions[k, j]:.4f} at t={times[k]:.3f} s is outside"
                    f" [{lo[j]:.4f}, {hi[j]:.4f}]"
                )
        xyz = arm.fk_xyz(positions)
        xy = xyz[:, :2]
        low = xyz[:, 2] < self.min_height
        if np.any(low):
            k = int(np.argmax(low))
            out.append(
                f"effector height {xyz[k, 2]:.3f} m at t={times[k]:.3f} s is below"
                f" {self.min_height:.3f} m"
            )
        x0, x1, y0, y1 = self.workspace
        outside = (xy[:, 0] < x0) | (xy[:, 0] > x1) | (xy[:, 1] < y0) | (xy[:, 1] > y1)
        if np.any(outside):
            k = int(np.argmax(outside))
            out.append(
                f"effector ({xy[k, 0]:.3f}, {xy[k, 1]:.3f}) m at t={times[k]:.3f} s leaves the"
                f" workspace x∈[{x0}, {x1}], y∈[{y0}, {y1}]"
            )
        return out

    def check_plan(
        self,
        arm: Kinematics,
        plan: Plan,
        arrivals: Sequence[tuple[float, State]] = (),
        positions: bool = True,
    ) -> list[str]:
        """Every violation of a plan, between its knots too, as the controller runs it.

        Speed, acceleration and jerk exactly over the whole curve (:func:`curve_peaks`:
        the controller's polynomial segments, from the plan's start state, which the
        ``stamp`` controller continues from); joint positions, the effector's height and
        the workspace on samples of the curve every ``dt``. For a ``jtc`` controller,
        which takes a trajectory over on arrival from the measured state, also the curve
        it bridges from each of ``arrivals`` to the first knot.

        Args:
            arm: The arm model (for the effector path).
            plan: The plan.
            arrivals: ``jtc``: (how long before the start the trajectory may arrive [s],
                the measured state then) for each arrival to check.
            positions: Check positions, height and workspace too (a stop, which keeps
                an already checked path, skips them).

        Returns:
            Human-readable violations; empty when the plan is safe.
        """
        out = self.check_positions(arm, *plan.samples()) if positions else []
        out += self._check_curve(plan.curve)
        if arrivals:  # only the first segment differs from the plan's: all at once
            early = np.array([e for e, _ in arrivals])
            starts = np.stack(
                [np.stack([s.position, s.velocity, 0.0 * s.position]) for _, s in arrivals]
            )  # (A, 3, J)
            first = np.stack([plan.positions[0], plan.velocities[0], plan.accelerations[0]])
            h = (early + plan.times[0])[:, None]
            coef = _quintic(h, starts, np.broadcast_to(first, starts.shape))  # (6, A, J)
            n_a, n_j = starts.shape[0], starts.shape[2]
            peaks = _segment_peaks(
                coef.reshape(6, -1), np.repeat(h[:, 0], n_j), np.repeat(-early, n_j)
            )
            for (peak, at), name, limit in zip(
                peaks,
                ("speed", "acceleration", "jerk"),
                (self.velocity, self.acceleration, self.jerk),
                strict=True,
            ):
                ratio = peak.reshape(n_a, n_j) / (np.asarray(limit) * ARRIVAL_MARGIN)
                if np.any(ratio > 1.0 + 1e-9):
                    a, j = np.unravel_index(int(ratio.argmax()), ratio.shape)
                    out.append(
                        f"joint {j} {name} {peak.reshape(n_a, n_j)[a, j]:.3f} at"
                        f" t={at.reshape(n_a, n_j)[a, j]:.3f} s exceeds"
                        f" {ARRIVAL_MARGIN:.2f} x {limit[j]:.3f} (jtc, arriving"
                        f" {early[a]:.3f} s early)"
                    )
        return out

    def _check_curve(self, curve: PPoly) -> list[str]:
        """Speed, acceleration and jerk violations of a curve, exactly."""
        out: list[str] = []
        for (peak, at), name, limit, unit in zip(
            curve_peaks(curve),
            ("speed", "acceleration", "jerk"),
            (self.velocity, self.acceleration, self.jerk),
            ("/s", "/s²", "/s³"),
            strict=True,
        ):
            for j in np.flatnonzero(peak > np.asarray(limit) * (1.0 + 1e-9)):
                out.append(
                    f"joint {int(j)} {name} {peak[j]:.3f}{unit} at t={at[j]:.3f} s"
                    f" exceeds {limit[j]:.3f}{unit}"
                )
        return out


@dataclass(frozen=True)
class TrialTiming:
    """Timing of the trial and return-home trajectories."""

    sample_dt: float = 0.01
    """Spacing of the trajectory points [s]."""
    approach_duration: float = 1.0
    """Home → stroke start [s]."""
    dwell: float = 0.2
    """Rest at the stroke start before striking [s]."""
    hold: float = 0.2
    """Rest at the stroke end [s]."""
    return_duration: float = 1.0
    """Back home after the trial [s]."""


@dataclass
class Plan:
    """A joint trajectory exactly as the controller runs it: knots and quintic segments.

    The knots (t > 0; t = 0 is ``start``) carry positions, velocities and accelerations;
    between them the trajectory is the quintic that matches both ends, which is how
    ``joint_trajectory_controller`` (and the twin) interpolate them. So the message holds
    only the knots a motion needs — one per rest-to-rest minimum-jerk move, which is a
    quintic, and one every ``dt`` along a stroke — while the checks run on samples of the
    very curve the controller follows, every ``dt`` (:meth:`samples`).
    """

    times: np.ndarray
    """Time of each knot from the trajectory start [s], (N,), increasing, > 0."""
    positions: np.ndarray
    """Joint positions at the knots, (N, J)."""
    velocities: np.ndarray
    """Joint velocities at the knots, (N, J) (zero at the last one)."""
    accelerations: np.ndarray
    """Joint accelerations at the knots, (N, J) (zero at the last one)."""
    start: State
    """The reference at t = 0 (where the controller is when the trajectory arrives)."""
    dt: float
    """Spacing of the samples the limits are checked on [s]."""
    stroke_start: float = 0.0
    """When the stroke begins [s] (0 for a plain move)."""
    curve: PPoly = field(init=False, repr=False)
    """The piecewise quintic, t ∈ [0, duration]."""

    def __post_init__(self) -> None:
        t = np.concatenate([[0.0], self.times])
        s0 = self.start
        knots = np.stack([self.positions, self.velocities, self.accelerations], axis=1)
        ends = [np.stack([s0.position, s0.velocity, s0.acceleration]), *knots]
        self.curve = hermite_curve(t, np.stack(ends))

    @property
    def duration(self) -> float:
        """Time of the last knot [s]."""
        return float(self.times[-1])

    @property
    def end(self) -> np.ndarray:
        """Joint positions at the end."""
        out: np.ndarray = self.positions[-1]
        return out

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """The curve every ``dt`` from ``dt`` on and at its end: times (M,), positions (M, J)."""
        t = np.arange(1, math.floor(self.duration / self.dt + _TIME_EPS) + 1) * self.dt
        if len(t) == 0 or t[-1] < self.duration - _TIME_EPS:
            t = np.append(t, self.duration)
        return t, np.asarray(self.curve(t), dtype=np.float64)

    def state_at(self, t: float) -> State:
        """The reference at time ``t`` from the start (at rest at the end after it).

        Args:
            t: Time from the trajectory start [s].

        Returns:
            The state.
        """
        if t <= 0.0:
            return self.start
        if t >= self.duration:
            return State.at_rest(self.end)
        return State(*(np.asarray(self.curve(t, nu=d), dtype=np.float64) for d in (0, 1, 2)))


@dataclass(frozen=True)
class TimedPlan:
    """A plan and when the controller started it (on the controller's clock)."""

    plan: Plan
    """The plan."""
    sent_at: float
    """Controller time at which it was sent [s]."""

    def state_at(self, now: float) -> State:
        """The controller's reference at controller time ``now``."""
        return self.plan.state_at(now - self.sent_at)

    def moving_at(self, now: float) -> bool:
        """Whether the plan is still running at ``now``."""
        return now - self.sent_at < self.plan.duration


@functools.cache
def skill_task(skill: str) -> Task:
    """The MuJoCo task of a skill: its θ spec and its θ → stroke mapping (one definition).

    Args:
        skill: One of :data:`SKILLS`.

    Returns:
        The task (shared, built once).

    Raises:
        ValueError: On an unknown skill.
    """
    if skill not in SKILLS:
        raise ValueError(f"skill must be one of {SKILLS}, got {skill!r}")
    return make_task(skill)


def _rest_to_rest(t: float, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One knot at rest: time, position, zero velocity and acceleration (as rows)."""
    return np.array([t]), q[None].copy(), np.zeros((1, len(q))), np.zeros((1, len(q)))


def plan_trial(
    skill: str, theta: ArrayLike, arm: Kinematics, start: State, timing: TrialTiming
) -> Plan:
    """The joint trajectory of one trial of θ, from the arm's state near home.

    Knots: the approach (a joint-space minimum-jerk move, one quintic) ends at rest at
    the stroke start; the dwell ends there too; then one knot every ``sample_dt`` along
    the stroke (inverse kinematics of the task's stroke, with velocities and
    accelerations of the quintic spline through them, at rest at both ends) and the
    end of the hold.

    Args:
        skill: One of :data:`SKILLS`.
        theta: θ (already checked against its bounds).
        arm: The arm model.
        start: The controller's reference (at rest, near home) when the trial starts.
        timing: Trajectory timing.

    Returns:
        The plan.

    Raises:
        Unreachable: If part of the stroke is out of the arm's reach.
        ValueError: On an unknown skill or a non-positive sample spacing.
    """
    dt = timing.sample_dt
    if not dt > 0:
        raise ValueError(f"sample_dt must be positive, got {dt}")
    stroke = skill_task(skill).stroke(np.asarray(theta, dtype=np.float64))
    # Stroke reference on the grid, relative to its own start (step index only).
    n_stroke = math.ceil((stroke.duration + timing.hold) / dt - _TIME_EPS) + 1
    n_move = min(n_stroke, math.ceil(stroke.duration / dt - _TIME_EPS) + 1)
    start_xy, ref = stroke.reference(n_stroke, dt)
    q_all = arm.ik(np.vstack([start_xy, ref[:n_move]]), seed=start.position)  # one branch
    q_start, q_stroke = q_all[0], q_all[1:]
    n_approach = max(1, math.ceil(timing.approach_duration / dt - _TIME_EPS))
    n0 = max(n_approach, math.ceil((timing.approach_duration + timing.dwell) / dt - _TIME_EPS))
    parts = [_rest_to_rest(n_approach * dt, q_start)]
    if n0 > n_approach:
        parts.append(_rest_to_rest(n0 * dt, q_start))
    # The stroke: the quintic spline through its samples (from the dwell, at rest at both
    # ends); its knots carry the spline's own derivatives, so the segments are the spline.
    t_s = np.arange(n0, n0 + n_move + 1, dtype=np.float64) * dt
    q_s = np.vstack([q_start, q_stroke])
    zero = np.zeros(q_s.shape[1])
    spline = make_interp_spline(t_s, q_s, k=5, bc_type=([(1, zero), (2, zero)],) * 2)
    t_k = t_s[1:]
    vel, acc = spline(t_k, 1), spline(t_k, 2)
    vel[-1] = acc[-1] = 0.0
    parts.append((t_k, q_s[1:], vel, acc))
    if n_stroke > n_move:
        parts.append(_rest_to_rest((n0 + n_stroke) * dt, q_s[-1]))
    times, positions, velocities, accelerations = (
        np.concatenate(x) for x in zip(*parts, strict=True)
    )
    return Plan(times, positions, velocities, accelerations, start, dt, stroke_start=(n0 + 1) * dt)


def plan_move(start: State, goal: ArrayLike, duration: float, dt: float) -> Plan:
    """A joint-space minimum-jerk move to rest (one quintic; used to go home).

    Args:
        start: The controller's reference when the move starts.
        goal: Target joint positions.
        duration: Move time [s] (rounded up to the ``dt`` grid).
        dt: Sample spacing of the checks [s].

    Returns:
        The plan.
    """
    n = max(2, math.ceil(duration / dt - _TIME_EPS))
    return Plan(*_rest_to_rest(n * dt, np.asarray(goal, dtype=np.float64)), start, dt)


def held_at_start(plan: Plan) -> Plan:
    """The plan from rest with a first knot holding its start, one sample in (for ``jtc``).

    A ``jtc`` controller takes a trajectory over on arrival, any time in its lead, from
    the measured state, and runs its first segment from there to the first knot. A plan
    from rest whose first knot is its first motion (a 2 s approach) would then run that
    motion over a longer, unknown span: the arm elsewhere than the node's model of it,
    and a stop planned along the model far from the arm. Held at its start until the
    first knot, the take-over moves nothing (the plan starts at the measured position)
    and the motion runs exactly as planned from the stamp on.

    Args:
        plan: A plan whose start state is at rest.

    Returns:
        The same motion, one ``dt`` later, after a knot at rest at the start.

    Raises:
        ValueError: If the plan does not start at rest.
    """
    s0 = plan.start
    if np.any(s0.velocity != 0.0) or np.any(s0.acceleration != 0.0):
        raise ValueError("only a plan from rest can be held at its start")
    dt = plan.dt
    zero = np.zeros((1, len(s0.position)))
    return Plan(
        np.concatenate([[dt], plan.times + dt]),
        np.vstack([s0.position[None], plan.positions]),
        np.vstack([zero, plan.velocities]),
        np.vstack([zero, plan.accelerations]),
        s0,
        dt,
        stroke_start=plan.stroke_start + dt if plan.stroke_start else 0.0,
    )


# Peak of the minimum-jerk profile's first and second derivative (τ ∈ [0, 1]).
_MJ_PEAK_RATE = 1.875
_MJ_PEAK_CURVATURE = 10.0 / math.sqrt(3.0)


def stop_plan(
    active: TimedPlan,
    now: float,
    arm: Kinematics,
    limits: Limits,
    dt: float,
    jtc_from: float | None = None,
) -> tuple[TimedPlan | None, list[str]]:
    """A stop that decelerates along the running trajectory's own path, within limits.

    The controller is following ``active``; the stop keeps its path (already checked
    against position and workspace limits) and slows the progress along it from full
    speed to zero with a minimum-jerk ramp of the time scaling: ṡ(t) = 1 − s_mj(t/T),
    from ``now`` on. The path covered is half the ramp time's worth of the original. T
    starts at the shortest time the acceleration and jerk limits allow for the current
    velocity and grows until the stop passes :meth:`Limits.check_plan` from the
    current reference, between its knots too. Its knots, every ``dt``, carry the exact
    derivatives of the re-timed path.

    For a ``jtc`` controller (``jtc_from`` set), which takes a trajectory over on
    arrival, the stop is stamped in the past: from ``jtc_from`` (the earliest it may
    arrive) to ``now`` its knots are the running trajectory's own (the running knots in
    between, and the running curve sampled at both ends), then the ramp. Arriving
    after its first point, joint_trajectory_controller samples into the message's own
    segments (``Trajectory::sample``: the measured state is not used), so whenever the
    stop arrives, the controller goes on along the very curve it was running and
    brakes from ``now`` on: no bridge from the measured state and no step of the
    acceleration. (Bridged from the measured state with zero acceleration, stops at the
    end of a deceleration found no path-keeping stop within the limits.) The lead-in
    never starts before a moving trajectory's own start (whose curve before that is not
    the node's to know); an arrival before the first point is then checked as the
    controller bridges it (:data:`ARRIVALS` arrivals, within :data:`ARRIVAL_MARGIN`).

    Args:
        active: The running trajectory.
        now: Controller time [s]: when the braking starts.
        arm: The arm model.
        limits: The limits (the stop passes the same check as every trajectory).
        dt: Knot spacing [s].
        jtc_from: ``jtc``: the earliest controller time the stop may arrive [s];
            ``None``: a ``stamp`` controller (the stop is stamped ``now``).

    Returns:
        ``(stop and its stamp, [])``; ``(None, [])`` when the reference is already at
        rest (nothing to stop); ``(None, violations)`` when no stop within the limits was
        found (the running trajectory, itself checked, is then left to finish).
    """
    plan, elapsed = active.plan, now - active.sent_at
    if elapsed >= plan.duration:
        return None, []
    elapsed = max(elapsed, 0.0)  # not started yet: stop it at its start (at rest there)
    start = active.state_at(now)
    speed = np.abs(start.velocity)
    ramp = max(
        2.0 * dt,
        float(np.max(_MJ_PEAK_RATE * speed / np.asarray(limits.acceleration))),
        float(np.max(np.sqrt(_MJ_PEAK_CURVATURE * speed / np.asarray(limits.jerk)))),
    )

    def build(ramp: float) -> Plan:
        """The stop of ramp time ``ramp`` from ``now``."""
        n = math.ceil(ramp / dt - _TIME_EPS) + 2
        t = np.arange(1, n + 1, dtype=np.float64) * dt
        u = np.clip(t / ramp, 0.0, 1.0)
        # s(t) = elapsed + T·∫₀^u (1 − s_mj), with ∫₀^u s_mj = 2.5u⁴ − 3u⁵ + u⁶.
        progress = np.minimum(elapsed + ramp * (u - u**4 * (2.5 + u * (-3.0 + u))), plan.duration)
        rate = 1.0 - min_jerk(u)  # ṡ
        rate_dot = -30.0 * u**2 * (1.0 - u) ** 2 / ramp  # s̈
        q, dq, ddq = (np.asarray(plan.curve(progress, nu=d)) for d in (0, 1, 2))
        vel = dq * rate[:, None]
        acc = ddq * (rate**2)[:, None] + dq * rate_dot[:, None]
        vel[-1] = acc[-1] = 0.0
        return Plan(t, q, vel, acc, start, dt)

    lead_in: tuple[np.ndarray, float] | None = None
    arrivals: list[tuple[float, State]] = []
    if jtc_from is not None:
        first = math.floor(jtc_from / dt + _TIME_EPS) * dt
        if np.any(plan.start.velocity != 0.0) or np.any(plan.start.acceleration != 0.0):
            first = max(first, math.ceil(active.sent_at / dt - _TIME_EPS) * dt + dt)
        first = min(first, now - dt)
        own = active.sent_at + plan.times
        inside = own[(own > first + _TIME_EPS) & (own < now - _TIME_EPS)]
        knots = np.concatenate([[first], inside, [now]])  # `now`: where the ramp begins
        lead_in = (knots, first - dt)
        early = np.linspace(jtc_from, first, ARRIVALS)  # arrivals before the first point
        arrivals = [(first - dt - e, active.state_at(e)) for e in early if e < first - _TIME_EPS]

    violations: list[str] = []
    for _ in range(12):
        stop = build(ramp)
        stamp = now
        if lead_in is not None:
            knots, stamp = lead_in
            states = [active.state_at(t) for t in knots]
            stop = Plan(
                np.concatenate([knots - stamp, stop.times + (now - stamp)]),
                np.vstack([[s.position for s in states], stop.positions]),
                np.vstack([[s.velocity for s in states], stop.velocities]),
                np.vstack([[s.acceleration for s in states], stop.accelerations]),
                active.state_at(stamp),
                dt,
            )
        violations = limits.check_plan(arm, stop, arrivals, positions=False)
        if not violations:
            return TimedPlan(stop, stamp), []
        ramp *= 1.5
    return None, violations


def trust_region_violation(
    theta: ArrayLike, last: ArrayLike | None, max_step: ArrayLike
) -> str | None:
    """Check a step Δθ = θ − θ_last against the trust region (a box; 0 disables an axis).

    Args:
        theta: The requested θ.
        last: The last executed θ (``None`` before the first trial: no bound).
        max_step: Largest |Δθ| per parameter (θ units); 0 or less means unbounded.

    Returns:
        A description of the violation, or ``None``.
    """
    if last is None:
        return None
    step = np.asarray(theta, dtype=np.float64) - np.asarray(last, dtype=np.float64)
    bound = np.asarray(max_step, dtype=np.float64)
    bad = (bound > 0) & (np.abs(step) > bound + 1e-12)
    if not np.any(bad):
        return None
    j = int(np.argmax(bad))
    return f"Δθ[{j}] = {step[j]:.4f} exceeds the trust region ±{bound[j]:.4f}"


def clip_to_trust_region(
    theta: np.ndarray, last: np.ndarray | None, max_step: ArrayLike
) -> np.ndarray:
    """Clip Δθ into the trust region (the driver side; the arm only refuses).

    Args:
        theta: The proposed θ.
        last: The last executed θ (``None``: unchanged).
        max_step: Largest |Δθ| per parameter; 0 or less means unbounded.

    Returns:
        The clipped θ.
    """
    if last is None:
        return np.asarray(theta, dtype=np.float64).copy()
    bound = np.asarray(max_step, dtype=np.float64)
    bound = np.where(bound > 0, bound, np.inf)
    step = np.clip(np.asarray(theta, dtype=np.float64) - last, -bound, bound)
    out: np.ndarray = last + step
    return out
