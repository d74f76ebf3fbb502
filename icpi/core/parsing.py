r"""Parsing model output into validated values. Model output is data, never code.

:class:`NumericVectorParser` reads a fixed number of numbers from an answer (ICPI's Δθ),
checks arity, finiteness and magnitude, and clips to bounds; :class:`TextAnswerParser`
extracts a final answer from prose (``<answer>…</answer>``, ``\\boxed{…}`` or a regex).
Every failure has a short reason code, counted by :class:`FailureCounter`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Parse failure codes.
EMPTY = "empty"
NO_NUMBERS = "no_numbers"
ARITY = "arity"
NON_FINITE = "non_finite"
TOO_LARGE = "too_large"
OUT_OF_BOUNDS = "out_of_bounds"
NO_ANSWER = "no_answer"

_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf(?:inity)?)(?!\w|\.\d)",
    re.IGNORECASE,
)
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-"})


@dataclass(frozen=True)
class ParseResult:
    """The outcome of parsing one sample."""

    ok: bool
    """Whether a valid value was extracted."""
    value: Any = None
    """The value (``None`` when not ok)."""
    error: str | None = None
    """Failure code when not ok (see module constants)."""
    raw: str = ""
    """The text parsed."""
    clipped: bool = False
    """Whether a numeric value was clipped to its bounds."""
    detail: str = ""
    """Human-readable detail of a failure."""


class Parser(Protocol):
    """Turns one completion into a :class:`ParseResult`."""

    def __call__(self, text: str) -> ParseResult:
        """Parse one completion.

        Args:
            text: The completion.

        Returns:
            The result.
        """
        ...


def find_numbers(text: str) -> list[str]:
    """Return the number tokens in a text (``nan`` and ``inf`` included).

    Args:
        text: Any text.

    Returns:
        The tokens, in order.
    """
    return _NUMBER.findall(text.translate(_MINUS_SIGNS))


class NumericVectorParser:
    """Read exactly ``dim`` numbers from the first line that holds any.

    Values must be finite and within ``max_abs``; they are then clipped to
    ``[low, high]`` (or rejected as ``out_of_bounds`` when ``clip`` is False).
    """

    def __init__(
        self,
        dim: int,
        *,
        low: ArrayLike | None = None,
        high: ArrayLike | None = None,
        clip: bool = True,
        max_abs: float = 1e6,
        any_line: bool = False,
    ) -> None:
        """Create the parser.

        Args:
            dim: Number of values expected.
            low: Lower bounds (scalar or per dimension); ``None``: unbounded.
            high: Upper bounds (scalar or per dimension); ``None``: unbounded.
            clip: Clip values into the bounds; else reject out-of-bounds answers.
            max_abs: Magnitude above which an answer is rejected as garbage.
            any_line: Accept the first line holding exactly ``dim`` numbers, skipping
                prose lines before it (chat models); else only the first line with numbers.

        Raises:
            ValueError: If ``dim`` < 1 or a bound has the wrong shape.
        """
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.low = None if low is None else np.broadcast_to(np.asarray(low, float), (dim,))
        self.high = None if high is None else np.broadcast_to(np.asarray(high, float), (dim,))
        self.clip = clip
        self.max_abs = max_abs
        self.any_line = any_line

    def _fail(self, text: str, code: str, detail: str) -> ParseResult:
        return ParseResult(ok=False, error=code, raw=text, detail=detail)

    def __call__(self, text: str) -> ParseResult:
        """Parse one completion into a float vector of length ``dim``.

        Args:
            text: The completion.

        Returns:
            The result; ``value`` is a numpy array when ok.
        """
        if not text or not text.strip():
            return self._fail(text, EMPTY, "empty answer")
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        tokens: list[str] | None = None
        for line in lines:
            found = find_numbers(line)
            if not found:
                continue
            if self.any_line and len(found) != self.dim:
                tokens = tokens or found
                continue
            tokens = found
            break
        if tokens is None:
            return self._fail(text, NO_NUMBERS, "no numbers in the answer")
        if len(tokens) != self.dim:
            return self._fail(text, ARITY, f"expected {self.dim} numbers, got {len(tokens)}")
        values: NDArray[np.float64] = np.asarray([float(t) for t in tokens], dtype=float)
        if not np.all(np.isfinite(values)):
            return self._fail(text, NON_FINITE, f"non-finite value in {tokens}")
        if np.any(np.abs(values) > self.max_abs):
            return self._fail(text, TOO_LARGE, f"|value| > {self.max_abs:g} in {tokens}")
        lo = self.low if self.low is not None else -np.inf
        hi = self.high if self.high is not None else np.inf
        clipped_values = np.clip(values, lo, hi)
        clipped = bool(np.any(clipped_values != values))
        if clipped and not self.clip:
            return self._fail(text, OUT_OF_BOUNDS, f"{tokens} outside [{lo}, {hi}]")
        return ParseResult(ok=True, value=clipped_values, raw=text, clipped=clipped)


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


def _boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def normalise_answer(answer: str) -> str:
    """Normalise a final answer for comparison and voting.

    Strips whitespace, ``$`` signs and a trailing period, lowercases, and writes integral
    numbers without decimals (``"12.0"`` → ``"12"``).

    Args:
        answer: Raw answer text.

    Returns:
        The normalised answer.
    """
    a, prev = answer, None
    while a != prev:
        prev = a
        a = a.strip().strip("$")
        a = a[:-1] if a.endswith(".") else a
    a = a.lower()
    a = re.sub(r"\s+", " ", a)
    try:
        x = float(a.replace(",", ""))
    except ValueError:
        return a
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


class TextAnswerParser:
    r"""Extract a final answer: ``<answer>…</answer>``, else ``\\boxed{…}``, else a regex."""

    def __init__(
        self,
        pattern: str | None = None,
        *,
        normalise: Callable[[str], str] = normalise_answer,
        fallback_last_line: bool = False,
    ) -> None:
        """Create the parser.

        Args:
            pattern: Regex whose first group (or whole match) is the answer, tried after
                the tag and box forms; the last match wins.
            normalise: Applied to the extracted answer.
            fallback_last_line: Use the last non-empty line when nothing else matches.
        """
        self.pattern = re.compile(pattern, re.DOTALL) if pattern else None
        self.normalise = normalise
        self.fallback_last_line = fallback_last_line

    def __call__(self, text: str) -> ParseResult:
        """Parse one completion into a normalised answer string.

        Args:
            text: The completion.

        Returns:
            The result; ``value`` is the normalised answer when ok.
        """
        if not text or not text.strip():
            return ParseResult(ok=False, error=EMPTY, raw=text, detail="empty answer")
        found: str | None = None
        tags = _ANSWER_TAG.findall(text)
        if tags:
            found = tags[-1]
        if found is None:
            found = _boxed(text)
        if found is None and self.pattern is not None:
            matches = list(self.pattern.finditer(text))
            if matches:
                m = matches[-1]
                found = m.group(1) if m.groups() else m.group(0)
        if found is None and self.fallback_last_line:
            found = [ln for ln in text.splitlines() if ln.strip()][-1]
        if found is None or not found.strip():
            return ParseResult(ok=False, error=NO_ANSWER, raw=text, detail="no final answer")
        return ParseResult(ok=True, value=self.normalise(found), raw=text)


class FailureCounter:
    """Counts parse outcomes by failure code (a metric of every run)."""

    def __init__(self) -> None:
        """Start from zero."""
        self.total = 0
        self.ok = 0
        self.clipped = 0
        self.failures: Counter[str] = Counter()

    def add(self, result: ParseResult) -> None:
        """Count one result.

        Args:
            result: The parse result.
        """
        self.total += 1
        if result.ok:
            self.ok += 1
            self.clipped += int(result.clipped)
        else:
            self.failures[result.error or "unknown"] += 1

    def extend(self, results: Sequence[ParseResult]) -> None:
        """Count several results.

        Args:
            results: The parse results.
        """
        for r in results:
            self.add(r)

    def to_dict(self) -> dict[str, Any]:
        """Return the counts as JSON data.

        Returns:
            ``{"total", "ok", "clipped", "failures": {code: count}}``.
        """
        return {
            "total": self.total,
            "ok": self.ok,
            "clipped": self.clipped,
            "failures": dict(self.failures),
        }
