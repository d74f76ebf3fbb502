"""The real arm as an ICPI task, and hindsight relabelling of its rollouts (no ROS).

:class:`ArmTask` offers the :class:`~icpi.envs.spec.SkillTask` interface of the
MuJoCo tasks (task id, θ spec, outcome, instances, rollouts), so ICPI's loop, datasets and
run directories are used unchanged: ``run_method(cfg, out, task=ArmTask(...),
instance=task.instance)``. A rollout sends θ through a :class:`Transport` (the driver node's
ROS topics, or an in-process stand-in) and blocks until the arm reports.

On the way out θ is clipped to the task's bounds, into the arm's own θ box (the θ it can
execute within its limits, ``theta_box``), and Δθ from the last executed θ to the trust
region (each flagged as ``clipped``); the arm itself never changes θ, it only refuses.

**A refused θ does not end the run.** The arm refuses what it cannot execute within its
limits; the box is computed on a grid and the arm's state may differ from the plan's
(``robot/README.md``). So a refused θ is tried again halfway back to the *anchor* — the
last θ the arm executed in this run, or before any the centre of the box (so a start θ
the arm refuses falls back towards the centre) — up to ``max_refusals`` times; the
rollout then records the θ that ran (``clipped``) and its refusals
(``info["refusals"]``). Only a θ refused at the anchor itself, or refused
``max_refusals`` times, stops the run (:class:`TrialFailed`): at the start that means the
arm refuses the middle of the box it was said to execute, a configuration to fix.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from icpi.envs import make_task
from icpi.envs.spec import Instance, Rollout, ThetaSpec
from icpi.robot.contract import TrialRequest, TrialResult
from icpi.robot.skill import clip_to_trust_region

if TYPE_CHECKING:
    from icpi.manipulation.dataset import ImprovementDataset

log = logging.getLogger(__name__)


class TrialFailed(RuntimeError):
    """The arm did not return a scored rollout (refused, e-stopped, aborted, timed out)."""

    def __init__(self, status: str, reason: str, trial_id: int) -> None:
        super().__init__(f"trial {trial_id} {status}: {reason}")
        self.status = status
        self.reason = reason
        self.trial_id = trial_id


class Transport(Protocol):
    """Sends one request to the arm and waits for its result."""

    def request(self, req: TrialRequest, timeout: float) -> TrialResult:
        """Send ``req`` and block until its result.

        Args:
            req: The request.
            timeout: Longest wait [s].

        Returns:
            The result.

        Raises:
            TimeoutError: If no result came in time.
        """
        ...


class ArmTask:
    """ICPI's task interface on the arm (see the module docstring)."""

    def __init__(
        self,
        task_id: str,
        transport: Transport,
        goal: Sequence[float],
        physics: Sequence[float] | None = None,
        trust_region: Sequence[float] | None = None,
        trial_timeout: float = 60.0,
        on_rollout: Callable[[Rollout], None] | None = None,
        first_trial_id: int = 1,
        theta_box: Sequence[float] | None = None,
        start_theta: Sequence[float] | None = None,
        max_refusals: int = 3,
    ) -> None:
        """Wrap the arm.

        Args:
            task_id: The MuJoCo twin's task id (θ spec, outcome, dataset).
            transport: How requests reach the arm.
            goal: The goal in the task frame [m].
            physics: Nominal hidden physics (sorted names) to record; ``None``: mid-range.
            trust_region: Largest |Δθ| per parameter (0: unbounded); ``None``: none.
            trial_timeout: Longest wait per rollout [s].
            on_rollout: Called with every scored rollout (progress reporting).
            first_trial_id: Id of the first request (then counting up).
            theta_box: The θ the arm executes: the low values, then the high values (θ
                units, inside the task's bounds); ``None``: the task's bounds.
            start_theta: The first θ, inside the box; ``None``: the box's centre.
            max_refusals: Tries of a refused θ, each halfway back to the anchor.

        Raises:
            ValueError: On a goal outside the task's goal region or malformed values.
        """
        self.twin = make_task(task_id)
        self.transport = transport
        names = sorted(self.twin.physics_ranges)
        phys = None if physics is None else dict(zip(names, map(float, physics), strict=True))
        self.instance: Instance = self.twin.make_instance(goal=list(goal), physics=phys)
        dim = self.twin.theta_spec.dim
        self.trust_region = np.zeros(dim) if trust_region is None else np.asarray(trust_region)
        if self.trust_region.shape != (dim,):
            raise ValueError(f"trust_region needs {dim} values")
        self.trial_timeout = trial_timeout
        self.on_rollout = on_rollout
        self.box_low, self.box_high = arm_box(self.twin.theta_spec, theta_box)
        self.centre = 0.5 * (self.box_low + self.box_high)
        if start_theta is None:
            self.start_theta = self.centre
        else:
            start = np.asarray(start_theta, dtype=np.float64)
            outside = start.shape != (dim,) or bool(
                np.any(start < self.box_low) or np.any(start > self.box_high)
            )
            if outside:
                raise ValueError(
                    f"start_theta {list(start_theta)} must be {dim} values inside the arm's"
                    f" θ box {self.box_low.tolist()}..{self.box_high.tolist()}"
                )
            self.start_theta = start
        if max_refusals < 0:
            raise ValueError(f"max_refusals must be >= 0, got {max_refusals}")
        self.max_refusals = max_refusals
        self.last_theta: np.ndarray | None = None
        self.rollouts: list[Rollout] = []
        self._ids = itertools.count(first_trial_id)
        self._lock = threading.Lock()

    @property
    def task_id(self) -> str:
        """The twin's task id (matches the dataset's)."""
        return self.twin.task_id

    @property
    def theta_spec(self) -> ThetaSpec:
        """θ names, units and bounds (the twin's)."""
        return self.twin.theta_spec

    @property
    def goal_dim(self) -> int:
        """Goal dimension."""
        return self.twin.goal_dim

    def outcome(self, trajectory: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Outcome of a track: its last row (the arm appends the rest estimate there).

        Args:
            trajectory: Ball track (N, 3) [m].
            goal: The goal [m].

        Returns:
            The outcome xy [m].
        """
        return self.twin.outcome(trajectory, goal)

    def sample_instance(self, rng: np.random.Generator) -> Instance:
        """The configured instance (the real goal; no randomness).

        Args:
            rng: Unused (the arm's instance is fixed by its configuration).

        Returns:
            The instance.
        """
        return self.instance

    def rollout(self, instance: Any, theta: Any) -> Rollout:
        """Run θ once on the arm.

        Args:
            instance: The instance (its goal is sent with the request).
            theta: θ; clipped to its bounds, into the arm's θ box and to the trust region
                around the last θ; a refused θ is backed off (see the module docstring).

        Returns:
            The rollout (``theta`` as executed).

        Raises:
            ValueError: If θ is malformed.
            TrialFailed: If the arm aborted, was e-stopped or timed out, or refused θ
                even backed off.
        """
        checked, clipped = self.theta_spec.validate(theta)
        boxed = np.clip(checked, self.box_low, self.box_high)
        with self._lock:
            safe = clip_to_trust_region(boxed, self.last_theta, self.trust_region)
            anchor = self.centre if self.last_theta is None else self.last_theta
        clipped = clipped or bool(np.any(safe != checked))
        goal = np.asarray(instance.goal, dtype=np.float64)
        refusals: list[dict[str, Any]] = []
        while True:
            with self._lock:
                trial_id = next(self._ids)
            req = TrialRequest(trial_id, tuple(safe.tolist()), tuple(goal.tolist()))
            try:
                res = self.transport.request(req, self.trial_timeout)
            except TimeoutError as err:
                raise TrialFailed(
                    "timeout", f"no result within {self.trial_timeout} s ({err})", trial_id
                ) from err
            if res.ok:
                break
            at_anchor = bool(np.allclose(safe, anchor, rtol=0.0, atol=1e-12))
            if res.status != "refused" or at_anchor or len(refusals) >= self.max_refusals:
                if refusals:
                    log.warning("θ refused %d times before: %s", len(refusals), refusals)
                reason = res.reason
                if res.status == "refused" and at_anchor and self.last_theta is None:
                    reason += (
                        " — the arm refuses the centre of its θ box: recompute theta_box"
                        " (python -m icpi.robot.theta_box PARAMS.yaml) or check its limits"
                    )
                raise TrialFailed(res.status, reason, trial_id)
            refusals.append({"trial_id": trial_id, "theta": safe.tolist(), "reason": res.reason})
            safe = anchor + 0.5 * (safe - anchor)
            clipped = True
            log.warning(
                "trial %d refused (%s): trying θ %s, halfway back to %s",
                trial_id,
                res.reason,
                np.round(safe, 6).tolist(),
                np.round(anchor, 6).tolist(),
            )
        info: dict[str, Any] = {"trial_id": trial_id, "timing": dict(res.timing)}
        if refusals:
            info["refusals"] = refusals
        out = Rollout(
            theta=safe,
            clipped=clipped,
            outcome=np.asarray(res.outcome, dtype=np.float64),
            e=np.asarray(res.e, dtype=np.float64),
            cost=float(res.cost),
            trajectory=res.trajectory(),
            info=info,
        )
        with self._lock:
            self.last_theta = safe
            self.rollouts.append(out)
        if self.on_rollout is not None:
            self.on_rollout(out)
        return out


def arm_box(spec: ThetaSpec, box: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """The arm's θ box as (low, high) arrays, checked against the task's bounds.

    Args:
        spec: The task's θ spec.
        box: Low values then high values (``2·dim`` numbers); ``None``: the task's bounds.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: If the box is malformed, empty or reaches outside the task's bounds.
    """
    low, high = spec.low_array, spec.high_array
    if box is None:
        return low.copy(), high.copy()
    values = np.asarray(box, dtype=np.float64)
    if values.shape != (2 * spec.dim,) or not np.all(np.isfinite(values)):
        raise ValueError(
            f"theta_box needs {2 * spec.dim} finite values: the low values of {spec.names},"
            " then the high values"
        )
    lo, hi = values[: spec.dim], values[spec.dim :]
    if np.any(lo > hi) or np.any(lo < low - 1e-9) or np.any(hi > high + 1e-9):
        raise ValueError(
            f"theta_box {values.tolist()} must have low <= high inside the task's bounds"
            f" {list(spec.low)}..{list(spec.high)}"
        )
    return np.maximum(lo, low), np.minimum(hi, high)


def relabel_rollouts(
    task: ArmTask, rollouts: Sequence[Rollout], out: Path | None = None, seed: int = 0
) -> ImprovementDataset:
    """Hindsight-relabel rollouts of one instance into an improvement dataset.

    Uses the very relabelling and row assembly of the simulated datasets
    (:func:`icpi.manipulation.dataset.dataset_from_rollouts`): every ordered pair (a, b)
    whose relabelled goal (b's outcome) lies in the grown goal region and whose error is
    not already a success becomes a row, all of them kept. The sidecar records ``source:
    real-arm``; the physics columns hold the nominal values of the instance (unknown on
    hardware).

    Args:
        task: The arm task the rollouts ran on.
        rollouts: Its scored rollouts.
        out: Save the dataset here when given.
        seed: Recorded as the dataset seed.

    Returns:
        The dataset.

    Raises:
        DatasetError: If fewer than two rollouts or no usable pair are given.
    """
    from icpi.manipulation.dataset import dataset_from_rollouts

    source = f"real-arm rollouts relabelled ({len(rollouts)} rollouts)"
    dataset = dataset_from_rollouts(task.twin, task.instance, rollouts, seed, source)
    dataset.meta["source"] = "real-arm"
    dataset.meta["physics_known"] = False
    if out is not None:
        dataset.save(Path(out))
    return dataset
