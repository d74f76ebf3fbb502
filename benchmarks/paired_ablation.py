"""One method against its ablation, paired per instance, in a model-quality output folder.

``icpi bench --preset model-quality`` pairs every row with ``icpi+[model=off]``; this
script pairs two rows of the same proposer with each other (e.g. ``icpi+`` against
``icpi+[zoom=false]``), on the instances both ran: per task, the mean difference in mm of
the best-so-far after 5 and 10 rollouts and of the final cost, with its seeded bootstrap
95 % interval and wins/ties/losses (tie within 1 mm, the tables' convention; negative:
the first method lower), and the rollouts to below 5 mm per instance (of the first draw).

Usage: ``python benchmarks/paired_ablation.py OUT --proposers sigma0,sigma3,random
[--a icpi+] [--b 'icpi+[sensitivity=false]'] [--tasks slide-gc,ball-roll-gc,rope-swing-gc]
[--seeds 1000-1009] [--iterations 20] [--draws 1]`` (``--draws``: pool the noise draws of
``--draws`` runs of the preset, each pair on one instance and draw)
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from icpi.manipulation.bench import TIE_TOLERANCE, bootstrap_ci, parse_seeds
from icpi.manipulation.model_quality import SUCCESS, draw_folders, load_runs

log = logging.getLogger("paired_ablation")


def figures(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Best-so-far after 5 and 10 rollouts, the final cost, and the rollouts to 5 mm."""

    def at(k: int) -> float:
        return float(rows[min(k, len(rows)) - 1]["best_so_far"])

    first = next((r["iteration"] + 1 for r in rows if r["cost"] < SUCCESS), math.inf)
    return {"after 5": at(5), "after 10": at(10), "final": float(rows[-1]["cost"]), "to5": first}


def main() -> None:
    """Print one line per proposer and task."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the model-quality preset's output folder")
    ap.add_argument("--proposers", required=True, help="comma-separated labels (sigma0,...)")
    ap.add_argument("--a", default="icpi+")
    ap.add_argument("--b", default="icpi+[sensitivity=false]")
    ap.add_argument("--tasks", default="slide-gc,ball-roll-gc,rope-swing-gc")
    ap.add_argument("--seeds", default="1000-1009", help="e.g. 100-129 or 9000-9009,10000-10009")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--draws", type=int, default=1, help="noise draws to pool")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seeds = parse_seeds(args.seeds)
    tasks = args.tasks.split(",")
    log.info(
        "%s minus %s, mm: mean [bootstrap 95 %%] W/T/L (tie %g mm) after 5 | after 10 |"
        " final | rollouts to 5 mm per instance (%s/%s)",
        args.a, args.b, TIE_TOLERANCE * 1000, "a", "b",
    )  # fmt: skip
    for proposer in args.proposers.split(","):
        for task in tasks:
            a: dict[tuple[int, int], list[dict[str, Any]]] = {}
            b: dict[tuple[int, int], list[dict[str, Any]]] = {}
            for k, (folder, _) in enumerate(draw_folders(proposer, args.draws)):
                runs = load_runs(
                    args.out / folder, [task], [args.a, args.b], seeds, args.iterations
                )
                a.update({(s, k): r for s, r in runs.get((task, args.a), {}).items()})
                b.update({(s, k): r for s, r in runs.get((task, args.b), {}).items()})
            both = sorted(set(a) & set(b))
            if not both:
                log.info("%s %s: no instance ran both", proposer, task)
                continue
            fa = {s: figures(a[s]) for s in both}
            fb = {s: figures(b[s]) for s in both}
            cells = []
            for name in ("after 5", "after 10", "final"):
                d = np.array([fa[s][name] - fb[s][name] for s in both])
                low, high = bootstrap_ci(d.tolist())
                w, t, l_ = (
                    int(np.sum(d < -TIE_TOLERANCE)),
                    int(np.sum(np.abs(d) <= TIE_TOLERANCE)),
                    int(np.sum(d > TIE_TOLERANCE)),
                )
                cells.append(
                    f"{d.mean() * 1000:+.2f} [{low * 1000:+.2f}, {high * 1000:+.2f}] {w}/{t}/{l_}"
                )
            draw0 = [s for s in both if s[1] == 0]  # the first draw's
            to5 = " ".join(f"{fa[s]['to5']:g}/{fb[s]['to5']:g}" for s in draw0)
            log.info("%s %s (%d): %s | %s", proposer, task, len(both), " | ".join(cells), to5)


if __name__ == "__main__":
    main()
