"""Improvement examples and their retrieval: one definition for ICPI and the KNN baselines.

An *example* is a mapping ``{"theta", "e", "outcome", "goal", "dtheta"}`` (physical units,
float arrays): θ ended at ``outcome`` with error ``e`` = outcome − ``goal``, and θ + Δθ*
reaches the goal. A *situation* is the same without ``dtheta``: where the last rollout left
the skill. Retrieval finds the k examples nearest to a situation in the normalised feature
space — ``[θ, e]`` (the paper's relative error) or ``[θ, s_T, τ_g]`` (its "raw" ablation) —
with the core's k-d tree (:class:`~icpi.core.context.KNearest`), farthest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from icpi.core.context import KNearest
from icpi.envs.spec import Instance, Rollout, SkillTask
from icpi.manipulation.dataset import ImprovementDataset
from icpi.manipulation.dataset.design import SamplingDesign, relabel_pairs
from icpi.manipulation.predictors import local_linear

Vec = NDArray[np.float64]
Example = Mapping[str, Any]
Feature = Literal["e", "raw"]

#: Relabelling of a run's own rollouts: every pair, whatever its goal and error.
_OWN_RELABELLING = SamplingDesign(min_error=0.0)


def situation(rollout: Rollout, goal: ArrayLike) -> dict[str, Vec]:
    """The situation a rollout leaves: its θ, e and outcome, and the goal.

    Args:
        rollout: The rollout.
        goal: The instance's goal [m].

    Returns:
        ``{"theta", "e", "outcome", "goal"}``.
    """
    return {
        "theta": np.asarray(rollout.theta, float),
        "e": np.asarray(rollout.e, float),
        "outcome": np.asarray(rollout.outcome, float),
        "goal": np.asarray(goal, float),
    }


def features(ex: Example, feature: Feature) -> Vec:
    """The retrieval feature vector of an example or situation.

    Args:
        ex: Example or situation.
        feature: ``e`` ([θ, e]) or ``raw`` ([θ, outcome, goal]).

    Returns:
        The vector.
    """
    if feature == "e":
        return np.concatenate([ex["theta"], ex["e"]])
    return np.concatenate([ex["theta"], ex["outcome"], ex["goal"]])


def linear_correction(
    shown: Sequence[Example], where: Example, feature: Feature, ridge: float = 1e-3
) -> Vec:
    """Linear KNN: Δθ* fitted on the examples' features, predicted at the situation.

    Args:
        shown: The retrieved examples.
        where: The situation.
        feature: The retrieval feature (:func:`features`).
        ridge: Ridge penalty of the fit (:func:`~icpi.manipulation.predictors.local_linear`).

    Returns:
        Δθ (physical units).
    """
    feats = np.asarray([features(ex, feature) for ex in shown])
    dtheta = np.asarray([ex["dtheta"] for ex in shown])
    return local_linear(feats, dtheta, features(where, feature), ridge=ridge)


def dataset_examples(dataset: ImprovementDataset) -> list[dict[str, Vec]]:
    """The rows of a dataset as examples.

    Args:
        dataset: The dataset.

    Returns:
        One example per row, in row order.
    """
    return [
        {
            "theta": dataset.theta[i],
            "e": dataset.e[i],
            "outcome": dataset.outcome[i],
            "goal": dataset.goal[i],
            "dtheta": dataset.dtheta[i],
        }
        for i in range(len(dataset))
    ]


def relabel_own(
    task: SkillTask, goal: ArrayLike, rollouts: Sequence[Rollout]
) -> list[dict[str, Vec]]:
    """Hindsight examples from every ordered pair of a run's own rollouts.

    The same relabelling as the datasets' (:func:`~icpi.manipulation.dataset.design.
    relabel_pairs`), without their goal-region and minimum-error filters: b's outcome is
    the goal g', e = outcome_a(g') − g', Δθ* = θ_b − θ_a.

    Args:
        task: The task (its ``outcome``).
        goal: The instance's goal (only its dimension matters here).
        rollouts: Rollouts with trajectories.

    Returns:
        The examples, b-major.
    """
    if len(rollouts) < 2:
        return []
    inf = np.full(len(np.atleast_1d(goal)), np.inf)
    inst = Instance(goal=tuple(float(g) for g in np.atleast_1d(goal)), physics=())
    arrays = relabel_pairs(task, inst, rollouts, _OWN_RELABELLING, -inf, inf)
    theta, outcome = arrays["theta"], arrays["outcome"]
    out = []
    for a, b, out_a in zip(arrays["pair_a"], arrays["pair_b"], arrays["pair_outcome"], strict=True):
        g = outcome[b]
        out.append(
            {
                "theta": theta[a],
                "e": out_a - g,
                "outcome": out_a,
                "goal": g,
                "dtheta": theta[b] - theta[a],
            }
        )
    return out


class Retriever:
    """The k examples of a dataset nearest to a situation (plus optional extra examples)."""

    def __init__(self, examples: Sequence[Example], feature: Feature = "e", k: int = 20) -> None:
        """Index the examples.

        Args:
            examples: The dataset's examples (normalisation comes from them).
            feature: Retrieval feature.
            k: Neighbours returned.

        Raises:
            ValueError: If ``k`` < 1 or there are no examples.
        """
        self.feature: Feature = feature
        self.k = k
        self.index = KNearest(
            list(examples),
            features=lambda ex: features(ex, feature),
            query=lambda state: None,
            k=k,
            scale="std",
            nearest_last=True,
        )

    @property
    def examples(self) -> list[Example]:
        """The indexed examples."""
        return self.index.examples

    def nearest(self, where: Example, extra: Sequence[Example] = ()) -> list[Example]:
        """The k nearest examples, farthest first and nearest last.

        Args:
            where: The situation.
            extra: More candidates (e.g. the run's own relabelled rollouts).

        Returns:
            The examples.
        """
        return self.index.nearest(features(where, self.feature), extra=extra)

    def distance(self, where: Example, ex: Example) -> float:
        """Normalised distance between a situation and an example.

        Args:
            where: The situation.
            ex: The example.

        Returns:
            The Euclidean distance in the normalised feature space.
        """
        a = (features(where, self.feature) - self.index.offset) / self.index.scale
        b = (features(ex, self.feature) - self.index.offset) / self.index.scale
        return float(np.linalg.norm(a - b))
