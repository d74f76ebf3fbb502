"""How ICPI writes θ, e and Δθ as text, and reads Δθ back.

The format is fixed and compact, because a small model's tokenizer spends one token per
digit and the prompt holds k = 20 example lines:

- θ: each parameter as an integer percent of its range (0 = lower bound, 100 = upper
  bound), ``theta_steps`` = 100 by default (1000 gives permille for stronger models);
- Δθ: in the same units, signed (e.g. ``-7``);
- e: each component in whole centimetres (``e_unit`` = 0.01 m), clipped to ±``e_max``;
- the paper's "raw" ablation writes the outcome s_T and goal τ_g in the same unit instead
  of e.

One example line is ``θ e -> Δθ`` with single spaces, e.g. ``45 12 80 -12 3 -> 5 -2 0``
(21 tokens with SmolLM2's tokenizer); the query is ``θ e ->`` and the model completes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Vec = NDArray[np.float64]
Feature = Literal["e", "raw"]


@dataclass(frozen=True)
class NumberFormat:
    """Fixed-precision integer encoding of θ, Δθ and errors."""

    low: tuple[float, ...]
    """θ lower bounds (physical units)."""
    high: tuple[float, ...]
    """θ upper bounds (physical units)."""
    theta_steps: int = 100
    """Integer steps across each θ range (100: percent)."""
    e_unit: float = 0.01
    """Metres per integer step of e, outcome and goal (0.01: centimetres)."""
    e_max: int = 999
    """Errors are clipped to ±e_max units."""

    @property
    def span(self) -> Vec:
        """Width of each θ range."""
        out: Vec = np.asarray(self.high, float) - np.asarray(self.low, float)
        return out

    def theta_to_int(self, theta: ArrayLike) -> list[int]:
        """Encode θ (physical) as integers in [0, theta_steps]."""
        z = (np.asarray(theta, float) - np.asarray(self.low, float)) / self.span
        return [int(v) for v in np.rint(np.clip(z, 0.0, 1.0) * self.theta_steps)]

    def dtheta_to_int(self, dtheta: ArrayLike) -> list[int]:
        """Encode Δθ (physical) as signed integers."""
        z = np.asarray(dtheta, float) / self.span * self.theta_steps
        return [int(v) for v in np.rint(np.clip(z, -self.theta_steps, self.theta_steps))]

    def int_to_dtheta(self, values: ArrayLike) -> Vec:
        """Decode Δθ integers back to physical units."""
        out: Vec = np.asarray(values, float) / self.theta_steps * self.span
        return out

    @property
    def theta_unit(self) -> str:
        """How θ and Δθ integers read, for prompts (e.g. ``percent of range``)."""
        names = {100: "percent of range", 1000: "permille of range"}
        return names.get(self.theta_steps, f"1/{self.theta_steps} of range")

    @property
    def length_unit(self) -> str:
        """How error integers read, for prompts (e.g. ``cm``)."""
        names = {1.0: "m", 0.01: "cm", 0.001: "mm", 1e-4: "0.1 mm", 1e-5: "0.01 mm", 1e-6: "µm"}
        return names.get(self.e_unit, f"units of {self.e_unit:g} m")

    def length_to_int(self, values: ArrayLike) -> list[int]:
        """Encode lengths [m] (e, outcome, goal) as integers of ``e_unit``, clipped."""
        z = np.rint(np.asarray(values, float) / self.e_unit)
        return [int(v) for v in np.clip(z, -self.e_max, self.e_max)]


def _join(values: Sequence[int]) -> str:
    return " ".join(str(v) for v in values)


def situation_text(
    fmt: NumberFormat,
    theta: ArrayLike,
    e: ArrayLike,
    outcome: ArrayLike | None = None,
    goal: ArrayLike | None = None,
    feature: Feature = "e",
) -> str:
    """The left-hand side of a line: θ and the error feature.

    Args:
        fmt: The number format.
        theta: Parameters (physical units).
        e: Relative error [m].
        outcome: Absolute outcome s_T [m] (needed for ``feature="raw"``).
        goal: Goal τ_g [m] (needed for ``feature="raw"``).
        feature: ``e`` (the paper's relative error) or ``raw`` (s_T and τ_g).

    Returns:
        E.g. ``"45 12 80 -12 3"``.

    Raises:
        ValueError: If ``raw`` is asked without outcome and goal.
    """
    parts = [_join(fmt.theta_to_int(theta))]
    if feature == "e":
        parts.append(_join(fmt.length_to_int(e)))
    else:
        if outcome is None or goal is None:
            raise ValueError("the raw feature needs the outcome and the goal")
        parts += [_join(fmt.length_to_int(outcome)), _join(fmt.length_to_int(goal))]
    return " ".join(parts)


def example_line(situation: str, fmt: NumberFormat, dtheta: ArrayLike) -> str:
    """One example: ``situation -> Δθ``."""
    return f"{situation} -> {_join(fmt.dtheta_to_int(dtheta))}"


def query_line(situation: str) -> str:
    """The query the model completes: ``situation ->``."""
    return f"{situation} ->"
