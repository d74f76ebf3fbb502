"""The real arm as an ICPI task, and hindsight relabelling of its rollouts (no ROS).

:class:`ArmTask` offers the :class:`~icpi.envs.spec.SkillTask` interface of the
MuJoCo tasks (task id, θ spec, outcome, instances, rollouts), so ICPI's loop, datasets and
run directories are used unchanged: ``run_method(cfg, out, task=ArmTask(...),
instance=task.instance)``. A rollout sends θ through a :class:`Transport` (the driver node's
ROS topics, or an in-process stand-in) and blocks until the arm reports.

On the way out θ is clipped to its bounds and Δθ from the last executed θ to the trust
region (both flagged as ``clipped``); the arm itself never changes θ, it only refuses.
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
            theta: θ; clipped to its bounds and to the trust region around the last θ.

        Returns:
            The rollout.

        Raises:
            ValueError: If θ is malformed.
            TrialFailed: If the arm refused, aborted or was e-stopped, or timed out.
        """
        checked, clipped = self.theta_spec.validate(theta)
        with self._lock:
            safe = clip_to_trust_region(checked, self.last_theta, self.trust_region)
            clipped = clipped or bool(np.any(safe != checked))
            trial_id = next(self._ids)
        goal = np.asarray(instance.goal, dtype=np.float64)
        req = TrialRequest(trial_id, tuple(safe.tolist()), tuple(goal.tolist()))
        try:
            res = self.transport.request(req, self.trial_timeout)
        except TimeoutError as err:
            raise TrialFailed(
                "timeout", f"no result within {self.trial_timeout} s ({err})", trial_id
            ) from err
        if not res.ok:
            raise TrialFailed(res.status, res.reason, trial_id)
        out = Rollout(
            theta=safe,
            clipped=clipped,
            outcome=np.asarray(res.outcome, dtype=np.float64),
            e=np.asarray(res.e, dtype=np.float64),
            cost=float(res.cost),
            trajectory=res.trajectory(),
            info={"trial_id": trial_id, "timing": dict(res.timing)},
        )
        with self._lock:
            self.last_theta = safe
            self.rollouts.append(out)
        if self.on_rollout is not None:
            self.on_rollout(out)
        return out


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
