"""Check the Game of 24 ranking behind ``--split tot-test`` and why no solver rank replaces it.

1. The shipped ranking (``icpi/language/data/game24_ranks.txt``, the order of Tree of
   Thoughts' ``24.csv``) lists exactly the 1362 puzzles the reference solver finds solvable
   among the 1820 multisets of four numbers in 1–13.
2. Ranks 901–1000 (the standard test split) start with ``4 5 6 10`` and end with
   ``4 9 10 13`` (the ICRL paper's Figure 10 example).
3. A solver-only difficulty — fewer solution paths (ordered pairwise combinations reaching
   24) is harder, a puzzle needing a fractional intermediate harder still — against the
   public rank (human solve time): Spearman correlation and how many of the 100 test
   puzzles its ranks 901–1000 share. The public order is human data: a solver rank would
   pick another test set, so the shipped order is used.

Usage: ``python benchmarks/check_game24_ranking.py [--csv 24.csv]`` (``--csv``: also check
the shipped order against a copy of Tree of Thoughts' file).
"""

from __future__ import annotations

import argparse
import itertools
from fractions import Fraction

from scipy.stats import spearmanr

from icpi.language import game24


def paths(values: tuple[Fraction, ...]) -> int:
    """Solution paths: ordered pairwise combinations (distinct values) that reach 24."""
    if len(values) == 1:
        return int(values[0] == game24.TARGET)
    n = 0
    for i, j in itertools.combinations(range(len(values)), 2):
        rest = [values[k] for k in range(len(values)) if k not in (i, j)]
        for v in {v for v, _ in game24._combine(values[i], values[j])}:
            n += paths(tuple(sorted([*rest, v])))
    return n


def integer_only(values: list[Fraction]) -> bool:
    """Whether 24 is reachable with non-negative integer intermediates only."""
    if len(values) == 1:
        return values[0] == game24.TARGET
    for i, j in itertools.combinations(range(len(values)), 2):
        rest = [values[k] for k in range(len(values)) if k not in (i, j)]
        for v, _ in game24._combine(values[i], values[j]):
            if v.denominator == 1 and v >= 0 and integer_only([*rest, v]):
                return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", help="Tree of Thoughts' 24.csv, to compare the shipped order with")
    args = ap.parse_args()
    ranking = game24.standard_ranking()
    combos = list(itertools.combinations_with_replacement(range(1, 14), 4))
    solvable = {c for c in combos if game24.is_solvable(c)}
    print(f"multisets {len(combos)}, solvable {len(solvable)}, ranked {len(ranking)}, "
          f"ranked == solvable: {set(ranking) == solvable}")  # fmt: skip
    lo, hi = game24.TOT_TEST_RANKS
    test = ranking[lo - 1 : hi]
    print(f"ranks {lo}-{hi}: {len(test)} puzzles, first {test[0]}, last {test[-1]}")
    if args.csv:
        rows = game24.load_puzzles(args.csv)
        print(f"shipped order == {args.csv}: {[r.numbers for r in rows] == list(ranking)}")
    score = []
    for p in ranking:
        values = tuple(Fraction(x) for x in p)
        score.append((not integer_only(list(values)), -paths(values)))
    order = sorted(range(len(ranking)), key=lambda i: (score[i], ranking[i]))
    solver_rank = [0] * len(ranking)
    for r, i in enumerate(order):
        solver_rank[i] = r
    rho = spearmanr(range(len(ranking)), solver_rank).statistic
    shared = len({ranking[i] for i in order[lo - 1 : hi]} & set(test))
    print(f"solver-only difficulty vs public rank: Spearman rho {rho:.2f}; its ranks "
          f"{lo}-{hi} share {shared} of the {len(test)} test puzzles")  # fmt: skip


if __name__ == "__main__":
    main()
