"""What a parametric-skill task is, without MuJoCo: θ spec, instance, stroke, rollout.

These definitions are shared by the MuJoCo tasks (:mod:`icpi.envs.base`), the real arm
(:mod:`icpi.robot.adapter`), the improvement methods and the datasets, and import nothing
heavier than numpy. :class:`SkillTask` is the protocol every method runs on: a shipped
MuJoCo task, the real arm, or a user's own simulator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from icpi.errors import UserError

#: Default of a task's ``success_threshold``: cost under which a rollout counts as a
#: success [m] (metre-scale tasks).
SUCCESS_TOLERANCE = 0.005
#: Default of a task's ``e_unit``: outcome units per integer step of e in ICPI's prompt
#: (0.01: centimetres for a task whose outcome is in metres).
E_UNIT = 0.01


def success_threshold(task: Any) -> float:
    """The cost under which a rollout of ``task`` counts as a success.

    Args:
        task: Any task; its optional ``success_threshold`` attribute (in the units of its
            cost) overrides :data:`SUCCESS_TOLERANCE`.

    Returns:
        The threshold.

    Raises:
        TaskError: If the task's value is not a finite number > 0.
    """
    return _positive(task, "success_threshold", SUCCESS_TOLERANCE)


def e_unit(task: Any) -> float:
    """The size of one integer step of e (and outcome, goal) in ICPI's prompt for ``task``.

    Args:
        task: Any task; its optional ``e_unit`` attribute (in the units of its outcome)
            overrides :data:`E_UNIT`.

    Returns:
        The unit.

    Raises:
        TaskError: If the task's value is not a finite number > 0.
    """
    return _positive(task, "e_unit", E_UNIT)


def _positive(task: Any, name: str, default: float) -> float:
    value = getattr(task, name, None)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        task_id = getattr(task, "task_id", type(task).__name__)
        raise TaskError(f"task {task_id!r}: {name} must be a finite number > 0, got {value!r}")
    return number


class TaskError(UserError, ValueError):
    """A task breaks its contract (its θ spec or a rollout).

    A θ spec without a valid box, or a rollout with a non-finite cost or an e or outcome
    that is not finite numbers of the goal's length. The message names the task (or the
    θ spec) and what is wrong; the CLI prints it as one line and exits 2. Runs keep every
    rollout finished before it.
    """


@dataclass(frozen=True)
class ThetaSpec:
    """Names, units and bounds of a task's skill parameters θ."""

    names: tuple[str, ...]
    """Parameter names, in θ order."""
    units: tuple[str, ...]
    """Physical unit of each parameter."""
    low: tuple[float, ...]
    """Lower bound of each parameter."""
    high: tuple[float, ...]
    """Upper bound of each parameter."""

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0 or any(len(x) != n for x in (self.units, self.low, self.high)):
            raise TaskError(
                f"θ spec: names, units, low and high must have one entry per parameter, got"
                f" {len(self.names)}, {len(self.units)}, {len(self.low)} and {len(self.high)}"
            )
        for name, lo, hi in zip(self.names, self.low, self.high, strict=True):
            try:
                ok = math.isfinite(lo) and math.isfinite(hi) and lo < hi
            except TypeError:
                ok = False
            if not ok:
                raise TaskError(
                    f"θ spec: parameter {name!r} needs finite bounds with low < high, got"
                    f" low {lo!r} and high {hi!r}"
                )

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return len(self.names)

    @property
    def low_array(self) -> np.ndarray:
        """Lower bounds as a float64 array."""
        return np.asarray(self.low, dtype=np.float64)

    @property
    def high_array(self) -> np.ndarray:
        """Upper bounds as a float64 array."""
        return np.asarray(self.high, dtype=np.float64)

    def validate(self, theta: ArrayLike) -> tuple[np.ndarray, bool]:
        """Check θ's shape and finiteness, then clip it to the bounds.

        Args:
            theta: Array-like of ``dim`` numbers.

        Returns:
            The clipped θ as float64 and whether clipping changed it.

        Raises:
            ValueError: If θ has the wrong shape, is not numeric, or holds NaN or inf.
        """
        try:
            arr = np.asarray(theta, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"θ must be {self.dim} numbers {self.names}, got {theta!r}") from err
        if arr.shape != (self.dim,):
            raise ValueError(
                f"θ must have shape ({self.dim},) for parameters {self.names},"
                f" got shape {arr.shape}"
            )
        bad = [n for n, v in zip(self.names, arr, strict=True) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"θ must be finite; non-finite value in {', '.join(bad)}: {arr}")
        clipped = np.clip(arr, self.low_array, self.high_array)
        return clipped, bool(np.any(clipped != arr))

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Draw θ uniformly inside the bounds.

        Args:
            rng: Random generator.

        Returns:
            θ as float64.
        """
        return rng.uniform(self.low_array, self.high_array)


@dataclass(frozen=True)
class Instance:
    """One task instance: a goal and the hidden physics that vary between instances."""

    goal: tuple[float, ...]
    """Goal point in the world frame [m]."""
    physics: tuple[tuple[str, float], ...]
    """Sorted (name, value) pairs of the instance's physical parameters."""

    @property
    def goal_array(self) -> np.ndarray:
        """The goal as a float64 array."""
        return np.asarray(self.goal, dtype=np.float64)

    @property
    def physics_dict(self) -> dict[str, float]:
        """The physical parameters as a dict."""
        return dict(self.physics)


@dataclass(frozen=True)
class Stroke:
    """One straight minimum-jerk stroke of the effector in the task's table plane.

    The frame is the task frame: origin at the object's start spot, x along the nominal
    push or swing, z up. The MuJoCo scene and the real arm (:mod:`icpi.robot.skill`)
    execute the same stroke, so a task's θ → stroke mapping is written once, in
    :meth:`Task.stroke`.
    """

    angle: float
    """Direction of the stroke from the +x axis [rad]."""
    setback: float
    """Start distance behind the origin, along the stroke line [m]."""
    distance: float
    """Travel [m]."""
    duration: float
    """Travel time [s]."""

    def reference(self, nstep: int, timestep: float) -> tuple[np.ndarray, np.ndarray]:
        """The start point and the per-step xy reference (see :func:`straight_stroke`).

        Args:
            nstep: Number of samples.
            timestep: Sample period [s].

        Returns:
            The start point (2,) and the reference (nstep, 2) [m].
        """
        return straight_stroke(
            self.angle, self.setback, self.distance, self.duration, nstep, timestep
        )


@dataclass
class Rollout:
    """The result of running θ once on an instance (in simulation or on the arm)."""

    theta: np.ndarray
    """θ as executed (after clipping)."""
    clipped: bool
    """Whether θ was outside its bounds (or the arm's trust region) and was clipped."""
    outcome: np.ndarray
    """Where the tracked point ended up (task-specific, same frame as the goal) [m]."""
    e: np.ndarray
    """Relative error: outcome − goal [m]."""
    cost: float
    """Distance between outcome and goal [m]."""
    trajectory: np.ndarray | None = field(default=None, repr=False)
    """Path of the tracked point, one row per step, task frame [m] (``None`` when the
    rollout was rebuilt from a record)."""
    states: np.ndarray | None = field(default=None, repr=False)
    """Full physics state per step (only when recorded, for rendering)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Extras of the executor, kept in the record (e.g. the arm's trial id and timing)."""

    def to_record(self) -> dict[str, Any]:
        """The rollout part of a ``records.jsonl`` line (JSON data, no trajectory).

        Returns:
            ``theta``, ``clipped``, ``e``, ``outcome``, ``cost`` and the extras.
        """
        return {
            "theta": np.asarray(self.theta, float).tolist(),
            "clipped": bool(self.clipped),
            "e": np.asarray(self.e, float).tolist(),
            "outcome": np.asarray(self.outcome, float).tolist(),
            "cost": float(self.cost),
            **self.info,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Rollout:
        """Rebuild a rollout from its record (to replay a killed run without re-running it).

        Args:
            record: A mapping with ``theta``, ``clipped``, ``e``, ``outcome``, ``cost`` and
                optionally ``trajectory``.

        Returns:
            The rollout.
        """
        path = record.get("trajectory")
        return cls(
            theta=np.asarray(record["theta"], float),
            clipped=bool(record["clipped"]),
            outcome=np.asarray(record["outcome"], float),
            e=np.asarray(record["e"], float),
            cost=float(record["cost"]),
            trajectory=None if path is None else np.asarray(path, float),
        )


@runtime_checkable
class SkillTask(Protocol):
    """What every improvement method needs of a task: simulated, real, or a user's own.

    A MuJoCo :class:`~icpi.envs.base.Task`, the arm's :class:`~icpi.robot.adapter.ArmTask`
    and any user object with these members work alike (see ``examples/``). Optional
    attributes: ``success_threshold`` (cost of a success; default
    :data:`SUCCESS_TOLERANCE`, 5 mm), ``e_unit`` (one integer step of e in ICPI's prompt;
    default :data:`E_UNIT`, 1 cm) and ``outcome_description`` (what the outcome is, for a
    dataset's ``meta.json``), read by :func:`success_threshold` and :func:`e_unit`.

    Every rollout is checked where it leaves the task (:func:`check_rollout`): a cost that
    is not a finite number, or an e or outcome that is not finite numbers of the goal's
    length, stops the run, benchmark or collection with one line naming the task
    (:class:`TaskError`), before anything of that rollout is recorded.
    """

    @property
    def task_id(self) -> str:
        """Short task id (matches its dataset's)."""
        ...

    @property
    def theta_spec(self) -> ThetaSpec:
        """θ names, units and bounds."""
        ...

    def outcome(self, trajectory: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Outcome of a path of the tracked point for a goal (hindsight relabelling uses it)."""
        ...

    def sample_instance(self, rng: np.random.Generator) -> Instance:
        """Draw an instance (goal and hidden physics); the arm returns its configured one."""
        ...

    def rollout(self, instance: Instance, theta: ArrayLike) -> Rollout:
        """Run θ once on an instance (θ is validated and clipped by the task)."""
        ...


def check_rollout(task_id: str, instance: Instance, rollout: Rollout) -> Rollout:
    """Refuse a rollout that breaks the task contract (see :class:`SkillTask`).

    Args:
        task_id: The task's id (for the message).
        instance: The instance it ran on (e and the outcome have the goal's length).
        rollout: The rollout the task returned.

    Returns:
        The rollout, unchanged.

    Raises:
        TaskError: If its cost is not a finite number, or its e or outcome are not finite
            numbers of the goal's length; the message names the task and θ.
    """
    dim = len(instance.goal)
    problems = []
    try:
        cost = float(rollout.cost)
    except (TypeError, ValueError):
        problems.append(f"cost {rollout.cost!r} is not a number")
    else:
        if not math.isfinite(cost):
            problems.append(f"cost is {cost}")
    for name in ("e", "outcome"):
        value = getattr(rollout, name)
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"{name} {value!r} is not numbers")
            continue
        if arr.shape != (dim,):
            problems.append(f"{name} has shape {arr.shape}, the goal ({dim},)")
        elif not np.all(np.isfinite(arr)):
            problems.append(f"{name} is {arr.tolist()}")
    if problems:
        theta = np.asarray(rollout.theta, dtype=np.float64).tolist()
        raise TaskError(
            f"task {task_id} returned an invalid rollout for θ {theta}: {'; '.join(problems)}"
            " (a rollout needs a finite cost, and e and outcome of finite numbers, one per"
            " goal coordinate)"
        )
    return rollout


def min_jerk(tau: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile s(τ) = 10τ³ − 15τ⁴ + 6τ⁵ on τ clipped to [0, 1].

    Args:
        tau: Normalised time.

    Returns:
        Progress in [0, 1]; its peak slope is 1.875 at τ = 0.5.
    """
    t = np.clip(tau, 0.0, 1.0)
    out: np.ndarray = t**3 * (10.0 + t * (-15.0 + 6.0 * t))
    return out


def straight_stroke(
    angle: float, setback: float, distance: float, duration: float, nstep: int, timestep: float
) -> tuple[np.ndarray, np.ndarray]:
    """Planar position reference of an effector making one straight minimum-jerk stroke.

    The effector starts ``setback`` behind the origin on the line of ``angle``, travels
    ``distance`` along it in ``duration``, then holds. Each reference is computed from
    its step index alone, so the same inputs give bit-identical controls everywhere.

    Args:
        angle: Direction of the stroke from the +x axis [rad].
        setback: Start distance behind the origin [m].
        distance: Travel [m].
        duration: Travel time [s].
        nstep: Number of physics steps.
        timestep: Physics step [s].

    Returns:
        The start point (2,) and the xy reference per step (nstep, 2) [m].
    """
    direction = np.array([math.cos(angle), math.sin(angle)])
    start = -setback * direction
    progress = min_jerk(np.arange(nstep, dtype=np.float64) * timestep / duration)
    return start, start + np.outer(progress * distance, direction)
