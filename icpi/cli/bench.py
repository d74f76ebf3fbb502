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
    from icpi.config import add_config_flag, add_field_flag, add_flags
    from icpi.llm.config import add_llm_arguments
    from icpi.manipulation.bench import PRESETS, BenchConfig
    from icpi.manipulation.config import RunConfig

    p = subparsers.add_parser(
        "bench",
        help="Benchmark methods on tasks and instances; write a table and curves.",
        description="Every method spec on every task and instance seed. --config FILE may"
        " hold a bench: section (tasks, methods or preset, seeds, iterations, ...), run:"
        " settings for every run and llm: settings; flags override it. Run and LLM settings"
        " apply to every run, under each method spec's own (icpi[k=10;feature=raw]).",
    )
    p.add_argument("--out", type=Path, required=True, help="Benchmark directory (resumable).")
    add_config_flag(p)
    b = p.add_argument_group("benchmark")
    add_flags(b, BenchConfig, path=("bench",), skip={"preset"})
    add_field_flag(b, BenchConfig, "preset", path=("bench",), note=f"; one of {', '.join(PRESETS)}")
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
    from icpi.manipulation.bench import (
        bench_methods,
        bench_tasks,
        load_bench_config,
        parse_seeds,
        run_benchmark,
        split_list,
    )
    from icpi.manipulation.run import PER_CALL

    file = read_verb_config(
        args.config,
        run_keys_set_by_verb=BENCH_SETS,
        llm_keys_set_by_verb=PER_CALL,
        why="a benchmark sets them per run: give tasks, methods, seeds and iterations in"
        " its bench: section",
        sections=("bench",),
    )
    flags = flag_layer(args)
    where = f"{args.config} and the flags" if args.config else "the flags"
    cfg = load_bench_config(file.get("bench"), flags.get("bench"), where=where)
    t0 = time.perf_counter()
    if cfg.preset == "model-quality":
        from icpi.manipulation.model_quality import run_model_quality

        report = run_model_quality(
            bench_tasks(cfg),
            parse_seeds(cfg.seeds),
            cfg.iterations,
            args.out,
            llm=merge(file.get("llm"), flags.get("llm")),
            run=merge(file.get("run"), flags.get("run")),
            workers=cfg.workers,
            llm_concurrency=max(cfg.llm_concurrency, 2),
            progress=cfg.progress,
            draws=cfg.draws,
            proposers=split_list(cfg.proposers) if cfg.proposers else None,
        )
        sys.stdout.write(report["table"])
        wall = time.perf_counter() - t0
        sys.stdout.write(f"\nWall time: {wall:.0f} s. Table in {args.out}/model-quality.md.\n")
        return 0
    report = run_benchmark(
        bench_tasks(cfg),
        bench_methods(cfg),
        parse_seeds(cfg.seeds),
        cfg.iterations,
        args.out,
        llm=merge(file.get("llm"), flags.get("llm")),
        run=merge(file.get("run"), flags.get("run")),
        workers=cfg.workers,
        llm_concurrency=cfg.llm_concurrency,
        progress=cfg.progress,
        backend=cfg.backend,
        reference=cfg.reference,
    )
    wall = time.perf_counter() - t0
    sys.stdout.write(report["table"])
    sys.stdout.write(f"\nWall time: {wall:.0f} s. Reports in {args.out}/ (summary.md, ")
    sys.stdout.write("summary.csv, results.parquet, curves.png).\n")
    return 0
