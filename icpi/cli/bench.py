"""``icpi bench``: every (task, method, instance), a Table-1 summary and learning curves."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Run settings that a benchmark sets for each run itself (no flag, refused in --config).
BENCH_SETS = frozenset({"task", "method", "seed", "iterations"})


def add_parser(subparsers: Any) -> None:
    """Register the ``bench`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    from icpi.config import add_config_flag, add_flags
    from icpi.envs import TASKS
    from icpi.llm.config import add_llm_arguments
    from icpi.manipulation.bench import PRESETS
    from icpi.manipulation.config import RunConfig

    p = subparsers.add_parser(
        "bench",
        help="Benchmark methods on tasks and instances; write a table and curves.",
        description="Settings given as flags or in --config apply to every run, under"
        " each method spec's own (icpi[k=10;feature=raw]).",
    )
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
    p.add_argument(
        "--llm-concurrency",
        type=int,
        default=1,
        help="Model-using runs in flight at once (one endpoint, one cache; the embedded"
        " server answers one request at a time, so more helps remote endpoints).",
    )
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool and threads; ray: one Ray task per run, on a local Ray"
        " or the cluster of RAY_ADDRESS (pip install 'icpi[ray]'); the same results.",
    )
    p.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    add_config_flag(p)
    g = p.add_argument_group("run settings (every run)")
    add_flags(g, RunConfig, path=("run",), skip={*BENCH_SETS, "settings"})
    add_llm_arguments(p, skip=("sampling.seed", "sampling.n"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the verb.

    Args:
        args: Parsed arguments.

    Returns:
        Exit code.
    """
    from icpi.config import flag_layer, merge, read_verb_config
    from icpi.envs import TASKS
    from icpi.manipulation.bench import parse_seeds, preset_methods, run_benchmark, split_list
    from icpi.manipulation.run import PER_CALL

    file = read_verb_config(
        args.config,
        run_keys_set_by_verb=BENCH_SETS,
        llm_keys_set_by_verb=PER_CALL,
        why="by --tasks, --methods, --seeds, --iterations and each method, per run",
    )
    flags = flag_layer(args)
    tasks = list(TASKS) if args.tasks == "all" else split_list(args.tasks)
    methods = preset_methods(args.preset) if args.preset else split_list(args.methods)
    if args.models:
        methods += [f"icpi[model={m}]" for m in split_list(args.models)]
    t0 = time.perf_counter()
    report = run_benchmark(
        tasks,
        methods,
        parse_seeds(args.seeds),
        args.iterations,
        args.out,
        llm=merge(file.get("llm"), flags.get("llm")),
        run=merge(file.get("run"), flags.get("run")),
        workers=args.workers,
        llm_concurrency=args.llm_concurrency,
        progress=not args.no_progress,
        backend=args.backend,
    )
    wall = time.perf_counter() - t0
    sys.stdout.write(report["table"])
    sys.stdout.write(f"\nWall time: {wall:.0f} s. Reports in {args.out}/ (summary.md, ")
    sys.stdout.write("summary.csv, results.parquet, curves.png).\n")
    return 0
