"""Prompt rendering from templates.

A :class:`PromptTemplate` renders ``header``, one line per context example, a query and a
``footer`` with :meth:`str.format_map`. Numbers are written with a fixed precision (3
decimals unless the template gives a format spec, e.g. ``{reward:.1f}``); numeric
sequences become space-separated numbers, so ``"{theta} {e} -> {dtheta}"`` renders as
``"0.120 -0.300 0.050 0.010 -> 0.020 0.100"``. Rendering gives a plain string for
completion mode, or chat messages when a system text is set or ``chat=True``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from icpi.core.records import LoopState

Prompt = str | list[dict[str, str]]


def format_number(x: float, precision: int = 3) -> str:
    """Write a number with a fixed number of decimals (``nan``/``inf`` spelled out).

    Args:
        x: The number.
        precision: Decimals.

    Returns:
        The text; ``-0.000`` is written ``0.000``.
    """
    if not math.isfinite(x):
        return str(x)
    text = f"{x:.{precision}f}"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


class _Num:
    """A number that formats with the template's precision unless a spec is given."""

    __slots__ = ("precision", "value")

    def __init__(self, value: float, precision: int) -> None:
        self.value = value
        self.precision = precision

    def __format__(self, spec: str) -> str:
        return format(self.value, spec) if spec else format_number(self.value, self.precision)

    def __str__(self) -> str:
        return format_number(self.value, self.precision)


class _Vec:
    """A numeric sequence formatted as space-separated numbers (spec applies to each)."""

    __slots__ = ("precision", "values")

    def __init__(self, values: Sequence[float], precision: int) -> None:
        self.values = values
        self.precision = precision

    def __format__(self, spec: str) -> str:
        if spec:
            return " ".join(format(float(v), spec) for v in self.values)
        return " ".join(format_number(float(v), self.precision) for v in self.values)

    def __str__(self) -> str:
        return format(self, "")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def _wrap(value: Any, precision: int) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _Num(float(value), precision)
    if isinstance(value, np.ndarray):
        return _Vec(value.astype(float).ravel().tolist(), precision)
    if (
        isinstance(value, list | tuple)
        and value
        and all(type(v) is float or type(v) is int for v in value)
    ):
        return _Vec(value, precision)
    if isinstance(value, list | tuple) and value and all(_is_number(v) for v in value):
        return _Vec([float(v) for v in value], precision)
    return value


class _Fields(dict[str, Any]):
    """Format fields; a missing key raises a KeyError naming it and the known keys."""

    def __missing__(self, key: str) -> Any:
        raise KeyError(f"template field {key!r} not provided (known: {sorted(self)})")


def fields(mapping: Mapping[str, Any], precision: int = 3) -> dict[str, Any]:
    """Wrap values so that templates write numbers and vectors with fixed precision.

    Args:
        mapping: Raw values.
        precision: Default decimals.

    Returns:
        A mapping suitable for :meth:`str.format_map`.
    """
    return _Fields({k: _wrap(v, precision) for k, v in mapping.items()})


Part = str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class PromptTemplate:
    """Header, one line per example, query and footer; completion text or chat messages."""

    example: Part
    """Template of one context example (format string or callable on its fields)."""
    query: Part = ""
    """Template of the query (the line the model completes), formatted with the task,
    ``iteration``, ``instruction`` and ``query_fields`` values."""
    header: Part = ""
    """Text before the examples (same fields as the query)."""
    footer: Part = ""
    """Text after the query (same fields as the query)."""
    separator: str = "\n"
    """Joins the non-empty parts."""
    system: str | None = None
    """System message; setting it renders chat messages."""
    chat: bool = False
    """Render chat messages (system + one user message) instead of plain text."""
    precision: int = 3
    """Decimals of numbers without an explicit format spec."""
    instruction: Callable[[LoopState], str] | None = None
    """Per-step instruction available as ``{instruction}`` (ICRL explore/exploit)."""
    query_fields: Callable[[LoopState], Mapping[str, Any]] | None = None
    """Extra fields for header, query and footer (e.g. the last θ and e)."""

    def _fmt(self, part: Part, values: Mapping[str, Any]) -> str:
        if callable(part):
            return part(values)
        return part.format_map(fields(values, self.precision)) if part else ""

    def render(self, state: LoopState, context: Sequence[Mapping[str, Any]]) -> Prompt:
        """Render the prompt of one step.

        Args:
            state: The loop state (task, iteration, history).
            context: Examples chosen by the context builder, in prompt order.

        Returns:
            A string, or ``[{"role": "system", ...}, {"role": "user", ...}]`` in chat form.

        Raises:
            KeyError: If a template names a field that is not provided.
        """
        q: dict[str, Any] = {**state.task, "iteration": state.iteration}
        q["instruction"] = self.instruction(state) if self.instruction is not None else ""
        if self.query_fields is not None:
            q.update(self.query_fields(state))
        parts = [self._fmt(self.header, q)]
        parts += [self._fmt(self.example, ex) for ex in context]
        parts += [self._fmt(self.query, q), self._fmt(self.footer, q)]
        text = self.separator.join(p for p in parts if p)
        if self.system is None and not self.chat:
            return text
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return [*messages, {"role": "user", "content": text}]
