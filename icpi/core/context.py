"""Context builders: which earlier attempts or dataset examples a prompt shows.

Every builder maps a :class:`~icpi.core.records.LoopState` to a list of flat mappings
(one per example, oldest or farthest first) that a prompt template formats.

- :class:`AllAttempts`: every finished attempt (ICRL).
- :class:`LastN`: the last ``n`` attempts (ICRL short-window ablation, creative writing).
- :class:`SortedByReward`: attempts sorted by reward, best last, cut to a character budget
  (ICRL math).
- :class:`KNearest`: the ``k`` examples nearest to a query in a normalised feature space,
  from a fixed dataset plus (optionally) the run's own attempts, nearest last (ICPI).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from icpi.core.records import Attempt, LoopState

Example = Mapping[str, Any]
AttemptView = Callable[[Attempt], Example | None]


def default_view(attempt: Attempt) -> Example:
    """Show an attempt as ``{"iteration", "action", "reward", **info}``.

    Args:
        attempt: The attempt.

    Returns:
        Its flat view.
    """
    return attempt.view()


class ContextBuilder(Protocol):
    """Chooses the examples a prompt shows."""

    def build(self, state: LoopState) -> list[Example]:
        """Return the examples for this step, in prompt order.

        Args:
            state: The loop state.

        Returns:
            Flat mappings, one per example.
        """
        ...


def _views(history: Sequence[Attempt], view: AttemptView) -> list[Example]:
    out = []
    for a in history:
        v = view(a)
        if v is not None:
            out.append(v)
    return out


class AllAttempts:
    """Every finished attempt, oldest first."""

    def __init__(self, view: AttemptView = default_view) -> None:
        """Create the builder.

        Args:
            view: Maps an attempt to the mapping shown (``None`` hides it).
        """
        self.view = view

    def build(self, state: LoopState) -> list[Example]:
        """Return the views of all finished attempts, oldest first."""
        return _views(state.history, self.view)


class LastN:
    """The last ``n`` finished attempts, oldest first."""

    def __init__(self, n: int, view: AttemptView = default_view) -> None:
        """Create the builder.

        Args:
            n: Window length (>= 0).
            view: Maps an attempt to the mapping shown (``None`` hides it).

        Raises:
            ValueError: If ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n = n
        self.view = view

    def build(self, state: LoopState) -> list[Example]:
        """Return the views of the last ``n`` attempts, oldest first."""
        if self.n == 0:
            return []
        return _views(state.history[-self.n :], self.view)


class SortedByReward:
    """Attempts sorted by reward (best last by default), optionally cut to a budget."""

    def __init__(
        self,
        view: AttemptView = default_view,
        *,
        best_last: bool = True,
        max_examples: int | None = None,
        max_chars: int | None = None,
        size: Callable[[Example], int] | None = None,
    ) -> None:
        """Create the builder.

        Args:
            view: Maps an attempt to the mapping shown (``None`` hides it).
            best_last: Put the best attempts last (nearest the query); else first.
            max_examples: Keep at most this many of the best attempts.
            max_chars: Keep the best attempts whose summed ``size`` fits this budget.
            size: Size of one example (default: ``len(str(example))``).
        """
        self.view = view
        self.best_last = best_last
        self.max_examples = max_examples
        self.max_chars = max_chars
        self.size = size or (lambda ex: len(str(ex)))

    def build(self, state: LoopState) -> list[Example]:
        """Return the attempts ranked by reward within the budget."""
        ranked = sorted(
            (a for a in state.history if a.reward == a.reward),  # NaN rewards dropped
            key=lambda a: (-a.reward, a.iteration),
        )
        if self.max_examples is not None:
            ranked = ranked[: self.max_examples]
        chosen: list[Example] = []
        used = 0
        for a in ranked:
            v = self.view(a)
            if v is None:
                continue
            if self.max_chars is not None:
                used += self.size(v)
                if used > self.max_chars:
                    break
            chosen.append(v)
        return chosen[::-1] if self.best_last else chosen


class KNearest:
    """The ``k`` examples nearest to a query, in a normalised feature space (ICPI).

    The dataset's k-d tree (:class:`scipy.spatial.cKDTree`) is built once; the run's own
    attempts, few by nature, are searched by brute force and merged. Features are
    normalised per dimension by the dataset's mean and standard deviation (or range).
    """

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        features: Callable[[Example], ArrayLike],
        query: Callable[[LoopState], ArrayLike | None],
        k: int = 20,
        history_view: AttemptView | None = None,
        scale: Literal["std", "range", "none"] = "std",
        nearest_last: bool = True,
    ) -> None:
        """Create the builder and index the dataset.

        Args:
            examples: The dataset (e.g. ``{"theta", "e", "dtheta"}`` mappings).
            features: Feature vector of an example (e.g. ``[θ, e]`` concatenated).
            query: Feature vector of the current query; ``None`` gives an empty context.
            k: Number of neighbours.
            history_view: Maps an own attempt to an example (``None`` hides it); ``None``
                uses the dataset only.
            scale: Per-dimension normalisation: ``std`` (z-score), ``range`` (min-max) or
                ``none``; computed from the dataset.
            nearest_last: Order by decreasing distance (nearest last) as ICPI does; else
                nearest first.

        Raises:
            ValueError: If ``k`` < 1 or the dataset is empty or ragged.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not examples:
            raise ValueError("KNearest needs a non-empty dataset")
        self.examples = list(examples)
        self.features = features
        self.query = query
        self.k = k
        self.history_view = history_view
        self.nearest_last = nearest_last
        x = np.asarray([np.asarray(features(ex), dtype=float) for ex in self.examples])
        if x.ndim != 2:
            raise ValueError("every example must have a feature vector of the same length")
        self.offset: NDArray[np.float64] = np.zeros(x.shape[1])
        self.scale: NDArray[np.float64] = np.ones(x.shape[1])
        if scale == "std":
            self.offset = x.mean(axis=0)
            self.scale = x.std(axis=0)
        elif scale == "range":
            self.offset = x.min(axis=0)
            self.scale = x.max(axis=0) - x.min(axis=0)
        self.scale = np.where(self.scale > 1e-12, self.scale, 1.0)
        from scipy.spatial import cKDTree  # imported on first use: ~0.5 s

        self._tree = cKDTree(self._norm(x))

    def _norm(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = (x - self.offset) / self.scale
        return out

    def build(self, state: LoopState) -> list[Example]:
        """Return the ``k`` nearest examples to the query, ordered by distance."""
        q_raw = self.query(state)
        if q_raw is None:
            return []
        own: list[Example] = []
        if self.history_view is not None and state.history:
            own = _views(state.history, self.history_view)
        return self.nearest(q_raw, extra=own)

    def nearest(self, query: ArrayLike, extra: Sequence[Example] = ()) -> list[Example]:
        """The ``k`` examples nearest to a feature vector, from the dataset and ``extra``.

        Ties are broken by position (dataset first, then ``extra`` in order), so the
        result is deterministic.

        Args:
            query: Feature vector (unnormalised).
            extra: More examples to consider (e.g. the run's own, relabelled), searched by
                brute force.

        Returns:
            The examples, farthest first when ``nearest_last`` (else nearest first).
        """
        q = self._norm(np.asarray(query, dtype=float))
        k = min(self.k, len(self.examples))
        dist, idx = self._tree.query(q, k=k)
        dist = np.atleast_1d(dist)
        idx = np.atleast_1d(idx)
        cands: list[tuple[float, int, Example]] = [
            (float(d), int(i), self.examples[int(i)]) for d, i in zip(dist, idx, strict=True)
        ]
        if extra:
            f = self._norm(np.asarray([np.asarray(self.features(v), float) for v in extra]))
            d_own = np.linalg.norm(f - q, axis=1)
            base = len(self.examples)
            cands += [
                (float(d), base + j, v) for j, (d, v) in enumerate(zip(d_own, extra, strict=True))
            ]
        cands.sort(key=lambda c: (c[0], c[1]))
        chosen = cands[: self.k]
        if self.nearest_last:
            chosen.reverse()
        return [c[2] for c in chosen]
