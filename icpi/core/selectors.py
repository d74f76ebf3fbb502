"""Selectors: pick one candidate from ``n`` parsed samples.

- :class:`FirstValid`: the first sample that parsed (ICPI with n = 1, ICRL).
- :class:`MajorityVote`: the most common answer (ME-ICPO pseudo-label, self-consistency).
- :class:`MinimumEntropy`: the candidate with the lowest score, typically the entropy of
  answers drawn with it in context (ME-ICPO); :func:`answer_entropy` computes that score.
- :class:`NumericConsensus`: element-wise median / mean, or the medoid sample, of numeric
  vectors (ICPI with n > 1).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from icpi.core.parsing import ParseResult
from icpi.core.records import LoopState


@dataclass(frozen=True)
class Selection:
    """The chosen candidate (``index`` None when no sample was valid)."""

    index: int | None
    """Index of the chosen sample, or of the sample nearest a synthesised value."""
    value: Any = None
    """The chosen value (may be synthesised, e.g. a median)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Details for the record (votes, scores, agreement)."""


NONE = Selection(index=None, info={"reason": "no valid sample"})


class Selector(Protocol):
    """Chooses one candidate."""

    def select(self, results: Sequence[ParseResult], state: LoopState) -> Selection:
        """Choose among parsed samples.

        Args:
            results: One parse result per sample, in sampling order.
            state: The loop state.

        Returns:
            The selection.
        """
        ...


class FirstValid:
    """The first sample that parsed."""

    def select(self, results: Sequence[ParseResult], state: LoopState) -> Selection:
        """Return the first valid sample.

        Args:
            results: Parsed samples.
            state: Unused.

        Returns:
            The selection.
        """
        for i, r in enumerate(results):
            if r.ok:
                return Selection(index=i, value=r.value)
        return NONE


def _default_key(value: Any) -> Hashable:
    if isinstance(value, np.ndarray):
        return tuple(np.round(value, 6).tolist())
    return value if isinstance(value, Hashable) else repr(value)


class MajorityVote:
    """The most common answer; ties go to the answer seen first."""

    def __init__(self, key: Callable[[Any], Hashable] = _default_key) -> None:
        """Create the selector.

        Args:
            key: Maps a parsed value to what is compared (e.g. a normalised answer).
        """
        self.key = key

    def select(self, results: Sequence[ParseResult], state: LoopState) -> Selection:
        """Return the first sample carrying the modal answer.

        Args:
            results: Parsed samples.
            state: Unused.

        Returns:
            The selection; ``info`` holds ``votes`` and ``agreement`` (share of all samples).
        """
        keys = [self.key(r.value) if r.ok else None for r in results]
        counts = Counter(k for k in keys if k is not None)
        if not counts:
            return NONE
        best = max(counts.values())
        for i, k in enumerate(keys):
            if k is not None and counts[k] == best:
                return Selection(
                    index=i,
                    value=results[i].value,
                    info={
                        "votes": {str(key): c for key, c in counts.items()},
                        "agreement": best / len(results),
                    },
                )
        return NONE  # pragma: no cover - unreachable


#: Entropy of a sample set with no valid answer, in units of ``log2(n)`` (ME-ICPO's code:
#: five times the largest entropy, above any set with a valid answer, which stays below
#: ``2 × log2(n)``).
ALL_INVALID_FACTOR = 5.0


def answer_entropy(answers: Sequence[Hashable | None], penalise_invalid: bool = True) -> float:
    """Shannon entropy (bits) of the valid answers, plus a penalty for invalid ones.

    The penalty is ``log2(n) × invalid fraction`` (``n`` = number of samples), so a set of
    mostly invalid answers never looks confident; a set with no valid answer scores
    ``ALL_INVALID_FACTOR × log2(n)``, worse than any set with one (ME-ICPO).

    Args:
        answers: One entry per sample; ``None`` marks an invalid sample.
        penalise_invalid: Add the invalid-share penalty.

    Returns:
        The entropy in bits.
    """
    if not answers:
        return 0.0
    valid = [a for a in answers if a is not None]
    if not valid:
        return ALL_INVALID_FACTOR * math.log2(max(len(answers), 2))
    counts = np.asarray(list(Counter(valid).values()), dtype=float)
    p = counts / counts.sum()
    h = float(-(p * np.log2(p)).sum())
    if penalise_invalid:
        h += math.log2(len(answers)) * (len(answers) - len(valid)) / len(answers)
    return h


class MinimumEntropy:
    """The valid candidate with the lowest score (ME-ICPO's minimum-entropy choice)."""

    def __init__(self, score: Callable[[ParseResult, LoopState], float]) -> None:
        """Create the selector.

        Args:
            score: Score of one valid candidate, lower is better; ME-ICPO draws more
                samples with the candidate's summary in context and returns
                :func:`answer_entropy` of their answers.
        """
        self.score = score

    def select(self, results: Sequence[ParseResult], state: LoopState) -> Selection:
        """Score every valid sample and return the lowest (first on ties).

        Args:
            results: Parsed samples.
            state: Passed to the score.

        Returns:
            The selection; ``info["scores"]`` lists the score per sample (None if invalid).
        """
        scores: list[float | None] = [self.score(r, state) if r.ok else None for r in results]
        finite = [(s, i) for i, s in enumerate(scores) if s is not None and math.isfinite(s)]
        if not finite:
            return NONE
        s, i = min(finite)
        return Selection(index=i, value=results[i].value, info={"scores": scores, "best": s})


class NumericConsensus:
    """Combine valid numeric vectors: element-wise median or mean, or the medoid sample."""

    def __init__(self, method: Literal["median", "mean", "medoid"] = "median") -> None:
        """Create the selector.

        Args:
            method: ``median`` and ``mean`` synthesise a value; ``medoid`` keeps the sample
                with the smallest summed distance to the others.

        Raises:
            ValueError: On an unknown method.
        """
        if method not in ("median", "mean", "medoid"):
            raise ValueError(f"unknown consensus method {method!r}")
        self.method = method

    def select(self, results: Sequence[ParseResult], state: LoopState) -> Selection:
        """Return the consensus of the valid samples.

        Args:
            results: Parsed samples with numeric vector values.
            state: Unused.

        Returns:
            The selection; ``index`` is the valid sample nearest the consensus and
            ``info["spread"]`` the mean distance of valid samples to it.
        """
        idx = [i for i, r in enumerate(results) if r.ok]
        if not idx:
            return NONE
        x = np.asarray([np.asarray(results[i].value, dtype=float) for i in idx])
        if self.method == "median":
            value = np.median(x, axis=0)
        elif self.method == "mean":
            value = x.mean(axis=0)
        else:
            d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2).sum(axis=1)
            value = x[int(np.argmin(d))]
        dist = np.linalg.norm(x - value, axis=1)
        nearest = idx[int(np.argmin(dist))]
        return Selection(
            index=nearest,
            value=value,
            info={"method": self.method, "n_valid": len(idx), "spread": float(dist.mean())},
        )
