"""Bayesian optimisation: GP + expected improvement (``bayesian-optimization``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from icpi.envs.spec import Rollout
from icpi.manipulation.methods import register
from icpi.manipulation.methods.base import Method, MethodContext, MethodSettings, Vec


@dataclass(frozen=True)
class BOSettings(MethodSettings):
    """Settings of Bayesian optimisation."""

    xi: float = 0.01
    """Exploration margin of expected improvement (on −cost in metres)."""


@register
class BayesianOptimisation(Method[BOSettings]):
    """θ0, then GP expected-improvement proposals on the unit cube (maximising −cost)."""

    name = "bo"
    summary = "Bayesian optimisation (GP + expected improvement, `bayesian-optimization`)"
    Settings = BOSettings

    def __init__(self, ctx: MethodContext, settings: BOSettings | None = None) -> None:
        """Create the method (see :class:`~icpi.manipulation.methods.base.Method`)."""
        super().__init__(ctx, settings)
        from bayes_opt import BayesianOptimization
        from bayes_opt.acquisition import ExpectedImprovement

        self.names = [f"x{i}" for i in range(self.box.low.size)]
        self.opt = BayesianOptimization(
            f=None,
            pbounds={n: (0.0, 1.0) for n in self.names},
            acquisition_function=ExpectedImprovement(xi=self.settings.xi),
            random_state=ctx.seed,
            verbose=0,
            allow_duplicate_points=True,
        )

    def propose(self) -> Vec:
        """The θ of highest expected improvement."""
        z = self.opt.suggest()
        return self.box.from_unit(np.array([float(z[n]) for n in self.names]))

    def observe(self, theta: Vec, rollout: Rollout, kind: str | None) -> dict[str, Any]:
        """Register −cost at θ."""
        z = self.box.to_unit(theta)
        self.opt.register(dict(zip(self.names, z.tolist(), strict=True)), -float(rollout.cost))
        return {}
