"""KNN-5 and linear KNN-20: θ + a Δθ* predicted from the dataset examples nearest to [θ, e].

The paper's model-free baselines, and the numeric predictors ICPI falls back on. They
retrieve exactly as ICPI does (:class:`~icpi.manipulation.retrieval.Retriever`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from icpi.envs.spec import Rollout
from icpi.errors import ConfigError
from icpi.manipulation.methods import register
from icpi.manipulation.methods.base import Method, MethodContext, MethodSettings, Vec
from icpi.manipulation.predictors import knn_mean
from icpi.manipulation.retrieval import (
    Feature,
    Retriever,
    dataset_examples,
    linear_correction,
    situation,
)


@dataclass(frozen=True)
class KNNSettings(MethodSettings):
    """Settings of the nearest-neighbour baselines."""

    k: int = 5
    """Neighbours retrieved from the dataset."""
    feature: Feature = "e"
    """Retrieval feature: ``e`` ([θ, e]) or ``raw`` ([θ, s_T, τ_g]), as in ICPI."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")


@dataclass(frozen=True)
class LKNNSettings(KNNSettings):
    """Settings of linear KNN."""

    k: int = 20
    """Neighbours the local linear model is fitted on."""
    ridge: float = 1e-3
    """Ridge penalty of the fit, relative to the number of neighbours."""


def check_k(k: int, n_examples: int, method: str) -> None:
    """Refuse a k larger than the dataset (instead of clamping it silently).

    Args:
        k: Neighbours asked for.
        n_examples: Examples in the dataset.
        method: Method id, for the message.

    Raises:
        ConfigError: If ``k`` exceeds ``n_examples``.
    """
    if k > n_examples:
        raise ConfigError(
            f"{method}: k={k} exceeds the dataset's {n_examples} examples; lower k or use a"
            " larger dataset (dataset_size)"
        )


class NeighbourCorrection(Method[LKNNSettings]):
    """θ + a Δθ* predicted from the nearest dataset examples."""

    uses_dataset = True
    linear: ClassVar[bool] = False

    def __init__(self, ctx: MethodContext, settings: LKNNSettings | None = None) -> None:
        """Create the method (see :class:`~icpi.manipulation.methods.base.Method`)."""
        super().__init__(ctx, settings)
        s = self.settings
        check_k(s.k, len(self.dataset), self.name)
        self.retriever = Retriever(dataset_examples(self.dataset), feature=s.feature, k=s.k)
        self.last: Rollout | None = None

    def predict(self, rollout: Rollout) -> Vec:
        """The Δθ this method predicts after a rollout.

        Args:
            rollout: The last rollout.

        Returns:
            Δθ (physical units).
        """
        where = situation(rollout, self.ctx.instance.goal)
        shown = self.retriever.nearest(where)
        if not self.linear:
            return knn_mean(np.asarray([ex["dtheta"] for ex in shown]))
        ridge = getattr(self.settings, "ridge", 0.0)
        return linear_correction(shown, where, self.settings.feature, ridge=ridge)

    def propose(self) -> Vec:
        """θ of the last rollout plus the predicted Δθ."""
        assert self.last is not None
        return self.box.clip(self.last.theta + self.predict(self.last))

    def observe(self, theta: Vec, rollout: Rollout, kind: str | None) -> dict[str, Any]:
        """Remember the rollout (its θ and e are the next query)."""
        self.last = rollout
        return {}


@register
class KNN5(NeighbourCorrection):
    """θ + mean Δθ* of the 5 nearest examples."""

    name = "knn5"
    summary = "θ + mean Δθ* of the 5 nearest dataset examples"
    Settings = KNNSettings


@register
class LKNN20(NeighbourCorrection):
    """θ + local linear model of Δθ* on the 20 nearest examples."""

    name = "lknn20"
    summary = "θ + local linear model of Δθ* on the 20 nearest examples"
    Settings = LKNNSettings
    linear = True
