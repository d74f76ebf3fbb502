"""Local Jacobian: the minimum-norm step to the goal of a least-squares local model.

The strongest numeric bar of the benchmark: from the best rollout so far, retrieve the k
dataset examples nearest to it, fit the outcome's local Jacobian to their corrections and
to the run's own rollouts (:class:`~icpi.manipulation.local_model.LocalJacobian`), take the
damped minimum-norm step that zeroes the predicted error, and clip it to a trust region
that adapts to how well the predictions come true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from icpi.envs.spec import Rollout
from icpi.manipulation.local_model import BestSoFar, LocalJacobian, Observed, TrustRegion
from icpi.manipulation.methods import register
from icpi.manipulation.methods.base import Method, MethodContext, MethodSettings, Vec
from icpi.manipulation.methods.knn import check_k
from icpi.manipulation.retrieval import Feature, Retriever, dataset_examples


@dataclass(frozen=True)
class JacobianSettings(MethodSettings):
    """Settings of the local-Jacobian baseline (and of icpi+'s numeric search)."""

    k: int = 20
    """Neighbours retrieved from the dataset around the best rollout."""
    feature: Feature = "e"
    """Retrieval feature: ``e`` ([θ, e]) or ``raw`` ([θ, s_T, τ_g])."""
    own_weight: float = 4.0
    """Weight of one of the run's own finite differences relative to a neighbour's."""
    radius: float = 0.2
    """Initial trust-region radius (normalised θ)."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not 0.0 < self.radius <= 1.0:
            raise ValueError(f"radius must be in (0, 1], got {self.radius}")


def observed(rollout: Rollout) -> Observed:
    """A rollout as the search sees it."""
    return Observed(
        theta=np.asarray(rollout.theta, float),
        outcome=np.asarray(rollout.outcome, float),
        e=np.asarray(rollout.e, float),
        cost=float(rollout.cost),
    )


class LocalSearch:
    """The numeric machinery shared by ``jacobian`` and ``icpi+``.

    Retrieval around the best rollout, the local Jacobian fit and the trust region.
    """

    def __init__(self, method: Method[Any], settings: JacobianSettings) -> None:
        """Index the dataset.

        Args:
            method: The method (task, dataset, box).
            settings: k, feature, own weight and initial radius.
        """
        check_k(settings.k, len(method.dataset), method.name)
        self.settings = settings
        self.box = method.box
        self.goal = np.asarray(method.ctx.instance.goal, float)
        self.retriever = Retriever(
            dataset_examples(method.dataset), feature=settings.feature, k=settings.k
        )
        self.search = BestSoFar(self.box.span, TrustRegion(radius=settings.radius))
        self._shown: tuple[tuple[bool, int], list[Any]] | None = None

    def where(self, of: Observed | None = None) -> dict[str, Vec]:
        """The situation a rollout leaves (the retrieval query).

        Args:
            of: The rollout (default: the best so far).

        Returns:
            ``{"theta", "e", "outcome", "goal"}``.
        """
        rollout = of or self.search.best
        assert rollout is not None
        return {
            "theta": rollout.theta,
            "e": rollout.e,
            "outcome": rollout.outcome,
            "goal": self.goal,
        }

    def neighbours(self, own: bool = False) -> list[Any]:
        """The k examples nearest to the best rollout.

        Args:
            own: Also consider the run's own rollouts, relabelled in hindsight (every pair
                a → b as the example "from θ_a, Δθ = θ_b − θ_a reaches outcome_b"; exact for
                tasks whose outcome does not depend on the goal, a first-order
                approximation for the rope's closest approach).

        Returns:
            The examples, farthest first.
        """
        key = (own, len(self.search.seen))
        if self._shown is not None and self._shown[0] == key:
            return list(self._shown[1])  # one retrieval per rollout (the prompt asks too)
        extra: list[Any] = []
        if own:
            seen = self.search.seen
            for b in seen:
                for a in seen:
                    if a is not b:
                        extra.append(
                            {
                                "theta": a.theta,
                                "e": a.outcome - b.outcome,
                                "outcome": a.outcome,
                                "goal": b.outcome,
                                "dtheta": b.theta - a.theta,
                            }
                        )
        shown = list(self.retriever.nearest(self.where(), extra=extra))
        if own:
            self._shown = (key, shown)
        return list(shown)

    def model(self, neighbours: list[Any]) -> LocalJacobian:
        """The local Jacobian around the best rollout."""
        best = self.search.best
        assert best is not None
        return LocalJacobian.fit(
            self.box.span,
            neighbours,
            self.search.own(),
            (best.theta, best.outcome),
            own_weight=self.settings.own_weight,
        )

    def theta_of(self, dz: Vec) -> Vec:
        """θ of a normalised step from the best, clipped to the region and to the box.

        Args:
            dz: The step (normalised θ).

        Returns:
            θ.
        """
        best = self.search.best
        assert best is not None
        return self.box.clip(best.theta + self.search.region.clip(dz) * self.box.span)

    def predicted_cost(self, model: LocalJacobian, theta: Vec) -> float:
        """The cost the model predicts at θ."""
        best = self.search.best
        assert best is not None
        return float(np.linalg.norm(model.predict(best.e, (theta - best.theta) / self.box.span)))


@register
class Jacobian(Method[JacobianSettings]):
    """θ_best + the trust-region-clipped minimum-norm step of the local Jacobian."""

    name = "jacobian"
    summary = (
        "θ_best + min-norm step to the goal of a least-squares local Jacobian (neighbours"
        " and own rollouts), trust-region clipped"
    )
    Settings = JacobianSettings
    uses_dataset = True

    def __init__(self, ctx: MethodContext, settings: JacobianSettings | None = None) -> None:
        """Create the method (see :class:`~icpi.manipulation.methods.base.Method`)."""
        super().__init__(ctx, settings)
        self.local = LocalSearch(self, self.settings)
        self.predicted: float | None = None

    def propose(self) -> Vec:
        """θ_best + the clipped minimum-norm step of the local Jacobian."""
        best = self.local.search.best
        assert best is not None
        model = self.local.model(self.local.neighbours())
        theta = self.local.theta_of(model.step(best.e))
        self.predicted = self.local.predicted_cost(model, theta)
        return theta

    def observe(self, theta: Vec, rollout: Rollout, kind: str | None) -> dict[str, Any]:
        """Update the search with the rollout."""
        predicted = self.predicted if kind is None else None
        self.local.search.observe(observed(rollout), predicted)
        self.predicted = None
        return {"predicted_cost": predicted, "radius": self.local.search.region.radius}
