"""``icpi collect``: build a task's improvement dataset D without an LLM.

Rollouts on sampled instances, hindsight relabelling of every ordered pair of rollouts of
one instance, then a seeded selection down to ``--size`` examples (see
:mod:`icpi.manipulation.dataset` and ``datasets/README.md``). Writes
``OUT/examples.parquet`` and ``OUT/meta.json``. An interrupted run resumes where it
stopped when started again with the same arguments. The shipped datasets are built with
``icpi collect --task TASK --out datasets/TASK`` from the repository root.

With ``--from-bags DIR`` the rollouts are the real arm's recorded trials instead (the
bags ``icpi-driver-node`` writes, one per trial): θ from each request, the outcome from
the recorded ball track, every ordered pair relabelled and kept. A corrupt or truncated
bag stops it with one line (exit 2) before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from icpi.envs import TASKS, portable_task_spec

log = logging.getLogger(__name__)

# Same as icpi.manipulation.dataset.DEFAULT_SIZE (not imported here: it loads MuJoCo).
DEFAULT_SIZE = 300


def add_parser(subparsers: Any) -> None:
    """Register the ``collect`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    p = subparsers.add_parser(
        "collect",
        help="Build a task's improvement dataset (rollouts + hindsight relabelling).",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--task",
        required=True,
        help=f"Task: a shipped id ({', '.join(TASKS)}), module:Class or path/to/file.py:Class.",
    )
    p.add_argument("--out", type=Path, required=True, help="Output directory.")
    p.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help=f"Examples N (default {DEFAULT_SIZE})."
    )
    p.add_argument("--seed", type=int, default=0, help="Seed (default 0).")
    p.add_argument(
        "--workers",
        type=int,
        help="Threads (local) or Ray CPUs; default: every core. Does not change the data.",
    )
    p.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local: threads of this process; ray: one Ray task per instance, on the cluster"
        " of RAY_ADDRESS or a local Ray (pip install 'icpi[ray]').",
    )
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")
    p.add_argument("--keep-rollouts", action="store_true", help="Keep OUT/.rollouts after saving.")
    p.add_argument(
        "--compare-to",
        type=Path,
        metavar="DIR",
        help="After building, compare with the dataset in DIR (e.g. the shipped one): exit 1"
        " unless bit-identical or within the stated rebuild tolerance (datasets/README.md).",
    )
    p.add_argument(
        "--from-bags",
        type=Path,
        metavar="DIR",
        help="Relabel the real arm's recorded trials (DIR/trial_<id>/ bags of icpi-driver-node)"
        " instead of simulating: θ from each request, the outcome from the recorded ball track;"
        " trials that did not end ok (no_motion, aborted...) are kept but never relabelled.",
    )
    p.set_defaults(func=run)


def _from_bags(args: argparse.Namespace) -> int:
    """``--from-bags``: every bag is read before the output directory is touched."""
    from icpi.core.lock import DirLock
    from icpi.robot.bags import dataset_from_bags

    made = dataset_from_bags(args.from_bags, args.task, seed=args.seed)
    for t in made.trials:
        if not t.relabel:
            log.info("%s kept, not relabelled: %s", t.path.name, t.usable)
    with DirLock(args.out, what="collection"):
        made.dataset.save(args.out)
    used = sum(t.relabel for t in made.trials)
    log.info(
        "%s: %d examples from %d of %d trials in %s",
        args.out,
        len(made.dataset),
        used,
        len(made.trials),
        args.from_bags,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the collection.

    Args:
        args: Parsed arguments of the ``collect`` verb.

    Returns:
        Exit code: 0 on success, 1 when ``--compare-to`` finds the rebuild outside its
        tolerance (a bad argument, dataset or missing extra raises a user error: exit 2).
    """
    from icpi.core.lock import DirLock
    from icpi.errors import ConfigError
    from icpi.manipulation.dataset import (
        ImprovementDataset,
        collect_dataset,
        compare_datasets,
        regeneration_command,
    )

    if args.from_bags is not None:
        return _from_bags(args)
    if args.size < 1:
        raise ConfigError(f"--size must be at least 1, got {args.size}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    t0 = time.perf_counter()
    lock = DirLock(args.out, what="collection")
    try:
        ds = collect_dataset(
            args.task,
            args.out,
            size=args.size,
            seed=args.seed,
            workers=args.workers,
            backend=args.backend,
            progress=not args.no_progress,
            command=regeneration_command(
                portable_task_spec(args.task), args.out, args.size, args.seed
            ),
            keep_rollouts=args.keep_rollouts,
        )
    finally:
        lock.release(remove=True)  # the dataset directory keeps no .lock
    log.info(
        "%s: %d examples in %s (%.1f s)", args.task, len(ds), args.out, time.perf_counter() - t0
    )
    if args.compare_to is not None:
        reference = ImprovementDataset.load(args.compare_to, task_id=args.task)
        result = compare_datasets(ds, reference)
        level = logging.INFO if result.within_tolerance else logging.ERROR
        log.log(level, "%s vs %s: %s", args.out, args.compare_to, result.describe())
        return 0 if result.within_tolerance else 1
    return 0
