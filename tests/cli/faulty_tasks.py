"""Tasks of a user that break the task contract (issue 25): loaded as ``file.py:Class``.

A tiny analytic task (the outcome is θ itself, the goal drawn in the unit square) whose
rollouts go wrong from the third one on, in one way per class.
"""

from __future__ import annotations

import math

import numpy as np

from icpi.envs.spec import Instance, Rollout, ThetaSpec

#: Rollouts that come out right before the fault.
GOOD_ROLLOUTS = 2


class AnalyticTask:
    """Outcome = θ; the goal is drawn in [0.2, 0.8]²."""

    task_id = "analytic"
    theta_spec = ThetaSpec(names=("x", "y"), units=("m", "m"), low=(0.0, 0.0), high=(1.0, 1.0))
    goal_low = (0.2, 0.2)
    goal_high = (0.8, 0.8)

    def __init__(self) -> None:
        self.calls = 0

    def sample_instance(self, rng: np.random.Generator) -> Instance:
        return Instance(goal=tuple(float(g) for g in rng.uniform(0.2, 0.8, 2)), physics=())

    def outcome(self, trajectory: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return trajectory[-1, :2].copy()

    def rollout(self, instance: Instance, theta) -> Rollout:
        self.calls += 1
        th, clipped = self.theta_spec.validate(theta)
        e = th - instance.goal_array
        rollout = Rollout(
            theta=th,
            clipped=clipped,
            outcome=th.copy(),
            e=e,
            cost=float(np.linalg.norm(e)),
            trajectory=np.vstack([np.zeros(2), th]),
        )
        if self.calls > GOOD_ROLLOUTS:
            self.fault(rollout)
        return rollout

    def fault(self, rollout: Rollout) -> None:
        """Break the rollout (none here)."""


class NanCostTask(AnalyticTask):
    def fault(self, rollout: Rollout) -> None:
        rollout.cost = math.nan


class InfCostTask(AnalyticTask):
    def fault(self, rollout: Rollout) -> None:
        rollout.cost = math.inf


class ShortErrorTask(AnalyticTask):
    def fault(self, rollout: Rollout) -> None:
        rollout.e = rollout.e[:1]


class NanOutcomeTask(AnalyticTask):
    def fault(self, rollout: Rollout) -> None:
        rollout.outcome = np.array([math.nan, 0.0])
        rollout.e = rollout.outcome - 0.5


class InvertedBoundsTask(AnalyticTask):
    def __init__(self) -> None:
        super().__init__()
        self.theta_spec = ThetaSpec(("x", "y"), ("m", "m"), (0.0, 1.0), (1.0, 0.0))


class NanBoundsTask(AnalyticTask):
    def __init__(self) -> None:
        super().__init__()
        self.theta_spec = ThetaSpec(("x", "y"), ("m", "m"), (0.0, math.nan), (1.0, 1.0))
