"""icpi+'s first decision, per method, against the reference's step from the same θ.

Rollout 1 starts from the same θ with or without a model, so it compares one for one. Per
task and method this prints in how many runs the model's candidate won rollout 1, in how
many of those its step cost more than the reference's rollout 1 on the same instance, and
how far the outcome model put each winning step from the model's claim, in units of its
own uncertainty (the contradiction the arbiter's test reads: ‖claim − ê‖ / σ, from the
decision stored in ``attempts.jsonl``). RESULTS §3's last part was made with it.

Usage: ``python benchmarks/first_decision.py DIR --methods 'icpi+,icpi+[outcome_prior=0.8]'
[--reference 'icpi+[model=off]'] [--reference-dir DIR] [--tasks slide-gc,...]
[--seeds 100-129] [--iterations 3]`` (``--reference-dir``: where the reference's runs are,
when not in ``DIR``)
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from icpi.manipulation.bench import parse_seeds, task_dir_name
from icpi.manipulation.config import parse_method_spec
from icpi.manipulation.model_quality import REFERENCE, load_runs

log = logging.getLogger("first_decision")


def first_contradiction(run_dir: Path) -> float | None:
    """The contradiction of the first decision's claim, if the model's candidate won it.

    Args:
        run_dir: One run's directory.

    Returns:
        ‖claim − the outcome model's prediction‖ / its uncertainty, or ``None`` when the
        first decision went to another source.
    """
    for line in (run_dir / "attempts.jsonl").read_text().splitlines():
        entry = json.loads(line)
        decision = ((entry.get("attempt") or {}).get("selection") or {}).get("decision")
        if decision is None:
            continue
        if decision["source"] != "model" or decision.get("claim") is None:
            return None
        gap = np.subtract(decision["claim"], decision["model_error"])
        return float(np.linalg.norm(gap) / decision["model_sigma"])
    return None


def main() -> None:
    """Print one line per task and method."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="a benchmark directory")
    ap.add_argument("--methods", required=True, help="comma-separated method specs")
    ap.add_argument("--reference", default=REFERENCE)
    ap.add_argument("--reference-dir", type=Path, default=None)
    ap.add_argument("--tasks", default="slide-gc,ball-roll-gc,rope-swing-gc")
    ap.add_argument("--seeds", default="100-129", help="e.g. 100-129 or 9000-9009,10000-10009")
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seeds = parse_seeds(args.seeds)
    ref_dir = args.reference_dir or args.out
    totals: dict[str, list[int]] = {}
    gaps: dict[str, list[float]] = {}
    for task in args.tasks.split(","):
        ref_runs = load_runs(ref_dir, [task], [args.reference], seeds, args.iterations)
        ref = ref_runs.get((task, args.reference), {})
        for method in args.methods.split(","):
            runs = load_runs(args.out, [task], [method], seeds, args.iterations)
            mine: dict[int, list[dict[str, Any]]] = runs.get((task, method), {})
            both = sorted(s for s in mine if s in ref and len(mine[s]) > 1)
            won = [s for s in both if mine[s][1]["source"] == "model"]
            worse = [s for s in won if mine[s][1]["cost"] > ref[s][1]["cost"]]
            slug = parse_method_spec(method).slug
            folder = args.out / "runs" / task_dir_name(task) / slug
            contradictions = [first_contradiction(folder / f"seed-{s}") for s in won]
            told = ", ".join(
                f"{s}: {c:.2f}{' (worse)' if s in worse else ''}"
                for s, c in zip(won, contradictions, strict=True)
                if c is not None
            )
            total = totals.setdefault(method, [0, 0, 0])
            total[0] += len(both)
            total[1] += len(won)
            total[2] += len(worse)
            gaps.setdefault(method, []).extend(c for c in contradictions if c is not None)
            log.info(
                "%s %s (%d): the model won rollout 1 in %d, %d of them worse than %s's step;"
                " contradiction: %s",
                method, task, len(both), len(won), len(worse), args.reference, told or "-",
            )  # fmt: skip
    for method, (n, won_n, worse_n) in totals.items():
        c = gaps[method]
        spread = f"median {np.median(c):.2f}, largest {max(c):.2f}" if c else "-"
        log.info(
            "%s, all tasks (%d): won %d, worse %d; contradiction %s",
            method, n, won_n, worse_n, spread,
        )  # fmt: skip


if __name__ == "__main__":
    main()
