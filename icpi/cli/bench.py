"""``icpi bench``: every (task, method, instance), a Table-1 summary and learning curves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from icpi.envs import TASKS


def add_parser(subparsers: Any) -> None:
    """Register the ``bench`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    from icpi.llm.config import add_llm_arguments
    from icpi.manipulation.bench import PRESETS

    p = subparsers.add_parser(
        "bench",
        help="Benchmark methods on tasks and instances; write a table and curves.",
        conflict_handler="resolve",
    )
    add_llm_arguments(p)
    p.add_argument(
        "--tasks", default=",".join(TASKS), help="Comma list of task ids, or 'all' (default)."
    )
    p.add_argument(
        "--methods",
        default="icpi,random,bo,knn5,lknn20,cmaes",
        help="Comma list of method specs, e.g. icpi,random,icpi[k=10;feature=raw].",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="Use a preset method list (the paper's table or an ablation axis) instead.",
    )
    p.add_argument(
        "--models",
        help="Comma list of model names: adds icpi[model=NAME] for each (model ablation).",
    )
    p.add_argument("--seeds", default="0-4", help="Instance seeds, e.g. 0-9 or 0,3,5.")
    p.add_argument("--iterations", type=int, default=20, help="Rollouts per run, θ0 included.")
    p.add_argument("--out", type=Path, required=True, help="Benchmark directory (resumable).")
    p.add_argument("--workers", type=int, default=2, help="Processes for model-free runs.")
    p.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the verb.

    Args:
        args: Parsed arguments.

    Returns:
        Exit code (2 on bad arguments).
    """
    import logging
    import time

    from icpi.llm.config import config_from_args
    from icpi.manipulation.bench import PRESETS, parse_seeds, run_benchmark, split_list

    log = logging.getLogger(__name__)
    tasks = list(TASKS) if args.tasks == "all" else split_list(args.tasks)
    methods = list(PRESETS[args.preset]) if args.preset else split_list(args.methods)
    if args.models:
        methods += [f"icpi[model={m}]" for m in split_list(args.models)]
    t0 = time.perf_counter()
    try:
        seeds = parse_seeds(args.seeds)
        report = run_benchmark(
            tasks,
            methods,
            seeds,
            args.iterations,
            args.out,
            llm=config_from_args(args),
            workers=args.workers,
            progress=not args.no_progress,
        )
    except ValueError as err:
        log.error("%s", err)
        return 2
    wall = time.perf_counter() - t0
    sys.stdout.write(report["table"])
    sys.stdout.write(f"\nWall time: {wall:.0f} s. Reports in {args.out}/ (summary.md, ")
    sys.stdout.write("summary.csv, results.parquet, curves.png).\n")
    return 0
