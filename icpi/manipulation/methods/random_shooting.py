"""Random shooting: θ0, then θ uniform in the box."""

from __future__ import annotations

from typing import Any

import numpy as np

from icpi.envs.spec import Rollout
from icpi.manipulation.methods import register
from icpi.manipulation.methods.base import Method, MethodContext, MethodSettings, Vec


@register
class RandomShooting(Method[MethodSettings]):
    """θ0, then θ drawn uniformly in the box (seeded)."""

    name = "random"
    summary = "random shooting, uniform in the θ box"

    def __init__(self, ctx: MethodContext, settings: MethodSettings | None = None) -> None:
        """Create the method (see :class:`~icpi.manipulation.methods.base.Method`)."""
        super().__init__(ctx, settings)
        self.rng = np.random.default_rng([ctx.seed, 17])

    def propose(self) -> Vec:
        """θ uniform in the box."""
        return self.box.from_unit(self.rng.random(self.box.low.size))

    def observe(self, theta: Vec, rollout: Rollout, kind: str | None) -> dict[str, Any]:
        """Nothing to learn."""
        return {}
