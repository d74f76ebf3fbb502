"""CMA-ES (``cma``) on the normalised θ box, started at θ0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from icpi.envs.spec import Rollout
from icpi.manipulation.methods import register
from icpi.manipulation.methods.base import Method, MethodContext, MethodSettings, Vec


@dataclass(frozen=True)
class CMAESSettings(MethodSettings):
    """Settings of CMA-ES."""

    sigma0: float = 0.2
    """Initial step size, in units of the box width."""


@register
class CMAES(Method[CMAESSettings]):
    """CMA-ES on the unit cube, started at θ0 (evaluated first like every method)."""

    name = "cmaes"
    summary = "CMA-ES (`cma`) started at θ0"
    Settings = CMAESSettings

    def __init__(self, ctx: MethodContext, settings: CMAESSettings | None = None) -> None:
        """Create the method (see :class:`~icpi.manipulation.methods.base.Method`)."""
        super().__init__(ctx, settings)
        import cma

        self.es = cma.CMAEvolutionStrategy(
            self.box.to_unit(self.box.theta0).tolist(),
            self.settings.sigma0,
            {"bounds": [0.0, 1.0], "seed": ctx.seed + 1, "verbose": -9},
        )
        self.queue: list[Vec] = []
        self.results: list[tuple[Vec, float]] = []

    def propose(self) -> Vec:
        """The next member of the current population."""
        if not self.queue:
            self.queue = [np.asarray(x, float) for x in self.es.ask()]
        return self.box.from_unit(self.queue[0])

    def observe(self, theta: Vec, rollout: Rollout, kind: str | None) -> dict[str, Any]:
        """Store the cost; update CMA-ES when the population is complete."""
        if kind is not None:  # θ0 and the re-run are not members of a population
            return {}
        z = self.queue.pop(0)
        self.results.append((z, float(rollout.cost)))
        if not self.queue:
            xs, costs = zip(*self.results, strict=True)
            self.es.tell(list(xs), list(costs))
            self.results = []
        return {}
