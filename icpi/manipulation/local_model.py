"""A local linear model of the outcome around a θ, and a trust region (icpi+ and jacobian).

Every improvement example is a finite difference of its instance's map θ → outcome: θ_a
ended at outcome_a, and θ_a + Δθ* reached the relabelled goal g', so Δoutcome = g' −
outcome_a = −e. The run's own rollouts give more such differences, on the very instance
being improved. :class:`LocalJacobian` fits J (outcome change per normalised θ step) to
both by weighted ridge least squares, predicts the error of any candidate step
(ê = e + J Δz), and gives the minimum-norm step to the goal (damped least squares).
:class:`TrustRegion` bounds the step and adapts to how well the predictions come true.

θ is normalised to the unit box (z = (θ − low) / span) throughout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Vec = NDArray[np.float64]


@dataclass(frozen=True)
class LocalJacobian:
    """Outcome change per normalised θ step, fitted around a centre."""

    J: NDArray[np.float64]
    """(goal dim, θ dim) [m per unit of normalised θ]."""
    pairs: int
    """Finite differences it was fitted on."""

    @classmethod
    def fit(
        cls,
        span: Vec,
        neighbours: Sequence[Mapping[str, Any]],
        own: Sequence[tuple[Vec, Vec]],
        centre: tuple[Vec, Vec],
        own_weight: float = 4.0,
        ridge: float = 1e-4,
    ) -> LocalJacobian:
        """Fit J to the neighbours' corrections and the run's own rollouts.

        Args:
            span: Width of each θ range (normalisation).
            neighbours: Examples (``dtheta``, ``e``): Δoutcome = −e for Δθ = Δθ*.
            own: The run's rollouts as (θ, outcome).
            centre: (θ, outcome) of the centre (the best rollout so far).
            own_weight: Weight of an own difference relative to a neighbour's (they are of
                the very instance improved on).
            ridge: Ridge penalty on J (relative to the total weight).

        Returns:
            The fit.
        """
        dz: list[Vec] = []
        do: list[Vec] = []
        w: list[float] = []
        for ex in neighbours:
            dz.append(np.asarray(ex["dtheta"], float) / span)
            do.append(-np.asarray(ex["e"], float))
            w.append(1.0)
        theta_c, out_c = centre
        for theta, out in own:
            step = (np.asarray(theta, float) - theta_c) / span
            if np.linalg.norm(step) < 1e-12:
                continue
            dz.append(step)
            do.append(np.asarray(out, float) - out_c)
            w.append(own_weight)
        g, d = len(out_c), len(span)
        if not dz:
            return cls(J=np.zeros((g, d)), pairs=0)
        x = np.asarray(dz)
        y = np.asarray(do)
        wt = np.asarray(w)[:, None]
        lam = ridge * float(wt.sum())
        normal = x.T @ (wt * x) + lam * np.eye(d)
        jac = np.asarray(np.linalg.solve(normal, x.T @ (wt * y)).T, dtype=np.float64)
        return cls(J=jac, pairs=len(dz))

    def predict(self, e: Vec, dz: Vec) -> Vec:
        """Predicted error after a normalised step.

        Args:
            e: Error at the centre [m].
            dz: The step (normalised θ).

        Returns:
            ê = e + J dz [m].
        """
        out: Vec = np.asarray(e, float) + self.J @ np.asarray(dz, float)
        return out

    def step(self, e: Vec, damping: float = 1e-3) -> Vec:
        """The minimum-norm step that zeroes the predicted error (damped least squares).

        Args:
            e: Error at the centre [m].
            damping: Levenberg–Marquardt damping (keeps the step finite when J is
                near-singular).

        Returns:
            Δz = −Jᵀ (J Jᵀ + μ I)⁻¹ e.
        """
        jac = self.J
        mu = damping * max(1.0, float(np.trace(jac @ jac.T)))
        out: Vec = -jac.T @ np.linalg.solve(jac @ jac.T + mu * np.eye(jac.shape[0]), e)
        return out


@dataclass
class TrustRegion:
    """The largest normalised step, grown after good predictions and shrunk after bad ones."""

    radius: float = 0.2
    """Current radius (normalised θ, Euclidean)."""
    low: float = 0.002
    """Smallest radius."""
    high: float = 0.5
    """Largest radius."""

    def __post_init__(self) -> None:
        self.initial = self.radius

    def clip(self, dz: Vec) -> Vec:
        """A step scaled back onto the region if it leaves it.

        Args:
            dz: The step.

        Returns:
            The step, ‖·‖ ≤ radius.
        """
        norm = float(np.linalg.norm(dz))
        if norm <= self.radius or norm == 0.0:
            return np.asarray(dz, float)
        out: Vec = np.asarray(dz, float) * (self.radius / norm)
        return out

    def update(self, predicted: float, actual: float, step: float) -> None:
        """Adapt the radius to a rollout (the classic ratio test).

        Args:
            predicted: Predicted cost reduction of the step [m] (cost before − predicted).
            actual: Actual cost reduction [m] (negative when it got worse).
            step: Length of the step taken (normalised).
        """
        if actual <= 0.0:
            shrunk = 0.5 * min(self.radius, max(step, self.low))
            # At its floor the region has nothing left to learn: start over (a fixed budget
            # is better spent exploring again than polishing a point that does not move).
            self.radius = self.initial if shrunk < self.low else shrunk
            return
        ratio = actual / predicted if predicted > 1e-12 else 1.0
        if ratio > 0.75 and step > 0.8 * self.radius:
            self.radius = min(self.high, 2.0 * self.radius)
        elif ratio < 0.25:
            self.radius = max(self.low, 0.5 * self.radius)


@dataclass
class Observed:
    """One rollout as the search sees it (physical θ, outcome, error, cost)."""

    theta: Vec
    outcome: Vec
    e: Vec
    cost: float


class BestSoFar:
    """Propose from the best rollout so far, inside a trust region around it.

    Every new rollout updates the region by the ratio of the actual to the predicted cost
    reduction of its step from the best; a better rollout becomes the new centre. The
    state is a function of the rollouts (and their predictions) alone, so a resumed run
    rebuilds it by replaying them.
    """

    def __init__(self, span: Vec, region: TrustRegion | None = None) -> None:
        """Start empty.

        Args:
            span: Width of each θ range (normalisation).
            region: The trust region (default :class:`TrustRegion()`).
        """
        self.span = np.asarray(span, float)
        self.region = region or TrustRegion()
        self.best: Observed | None = None
        self.seen: list[Observed] = []

    def observe(self, rollout: Observed, predicted_cost: float | None = None) -> None:
        """Take a rollout into account.

        Args:
            rollout: The rollout.
            predicted_cost: The cost its step was predicted to reach (None: no prediction).
        """
        if self.best is not None:
            actual = self.best.cost - rollout.cost
            predicted = actual if predicted_cost is None else self.best.cost - predicted_cost
            step = float(np.linalg.norm((rollout.theta - self.best.theta) / self.span))
            self.region.update(predicted, actual, step)
        if self.best is None or rollout.cost < self.best.cost:
            self.best = rollout
        self.seen.append(rollout)

    def own(self) -> list[tuple[Vec, Vec]]:
        """The rollouts as (θ, outcome) pairs, for :meth:`LocalJacobian.fit`."""
        return [(r.theta, r.outcome) for r in self.seen]
