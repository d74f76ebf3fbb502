"""``icpi demo``: roll out every task with a few random θ, print costs, write GIFs."""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from icpi.envs import TASKS

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    """Register the ``demo`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    p = subparsers.add_parser(
        "demo", help="Roll out every task with random θ; print costs and write one GIF per task."
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="Output directory.")
    p.add_argument(
        "--tasks", default=",".join(TASKS), help="Comma-separated task ids (default: all)."
    )
    p.add_argument("--rollouts", type=int, default=3, help="Random θ per task.")
    p.add_argument("--seed", type=int, default=0, help="Seed of instances and θ.")
    p.add_argument("--no-gif", action="store_true", help="Skip rendering.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo.

    Args:
        args: Parsed arguments of the ``demo`` verb.

    Returns:
        Exit code.
    """
    from icpi.envs.gl import choose_gl_backend

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        log.error("unknown task(s) %s; choose from %s", unknown, ", ".join(TASKS))
        return 2
    backend = None if args.no_gif else choose_gl_backend()
    from icpi.envs import make_task
    from icpi.envs.render import render_rollout, write_gif

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task_id in tasks:
        task = make_task(task_id)
        rng = np.random.default_rng(args.seed)
        instance = task.sample_instance(rng)
        thetas = [task.theta_spec.sample(rng) for _ in range(args.rollouts)]
        t0 = time.perf_counter()
        results = [task.rollout(instance, th) for th in thetas]
        ms = 1e3 * (time.perf_counter() - t0) / len(results)
        for i, r in enumerate(results):
            rows.append(
                {
                    "task": task_id,
                    "rollout": i,
                    "theta": " ".join(f"{v:.4f}" for v in r.theta),
                    "cost_m": f"{r.cost:.4f}",
                    "goal": " ".join(f"{v:.3f}" for v in instance.goal),
                }
            )
        best = min(results, key=lambda r: r.cost)
        log.info(
            "%s: %d rollouts, %.1f ms each, best cost %.3f m", task_id, len(results), ms, best.cost
        )
        if backend is not None:
            gif = write_gif(render_rollout(task, instance, best.theta), args.out / f"{task_id}.gif")
            log.info("%s: wrote %s", task_id, gif)
    with open(args.out / "costs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = sys.stdout
    out.write(f"{'task':<15}{'rollout':>8}  {'cost [m]':>9}  theta\n")
    for row in rows:
        out.write(f"{row['task']:<15}{row['rollout']:>8}  {row['cost_m']:>9}  {row['theta']}\n")
    out.write(f"costs: {args.out / 'costs.csv'}\n")
    return 0
