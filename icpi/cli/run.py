"""``icpi run``: improve one task instance and write a run directory."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from icpi.envs import TASKS

log = logging.getLogger(__name__)

METHODS = ("icpi",)


def add_parser(subparsers: Any) -> None:
    """Register the ``run`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    from icpi.llm.config import add_llm_arguments

    p = subparsers.add_parser(
        "run",
        help="Improve one task instance (ICPI) and write a run directory.",
        conflict_handler="resolve",
    )
    add_llm_arguments(p)
    p.add_argument("--task", required=True, choices=list(TASKS), help="Task id.")
    p.add_argument("--method", default="icpi", choices=METHODS, help="Improvement method.")
    p.add_argument("--seed", type=int, default=0, help="Instance seed (as env.reset) and run seed.")
    p.add_argument("--iterations", type=int, default=20, help="Rollouts in total, θ0 included.")
    p.add_argument("--out", type=Path, required=True, help="Run directory (resumed if present).")
    p.add_argument("--theta0", choices=("center", "random"), default="center", help="Initial θ.")
    g = p.add_argument_group("ICPI")
    g.add_argument("--k", type=int, default=20, help="Neighbours shown in the prompt.")
    g.add_argument(
        "--feature", choices=("e", "raw"), default="e", help="Relative error e or raw (s_T, τ_g)."
    )
    g.add_argument("--dataset", help="Dataset directory (default: the shipped one).")
    g.add_argument("--dataset-size", type=int, help="Use a seeded subset of this many examples.")
    g.add_argument("--max-resamples", type=int, default=1, help="Re-queries before the fallback.")
    g.add_argument(
        "--online-relabel",
        action="store_true",
        help="Add the run's own rollouts, relabelled in hindsight, to the retrieval set.",
    )
    g.add_argument(
        "--theta-steps", type=int, default=100, help="Prompt resolution of θ (100: percent)."
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the verb.

    Args:
        args: Parsed arguments.

    Returns:
        Exit code.
    """
    from icpi.llm.config import config_from_args
    from icpi.manipulation.improver import ICPISettings
    from icpi.manipulation.run import RunConfig, run_icpi

    settings = ICPISettings(
        k=args.k,
        feature=args.feature,
        n_samples=args.n or 1,
        max_resamples=args.max_resamples,
        online_relabel=args.online_relabel,
        theta_steps=args.theta_steps,
    )
    cfg = RunConfig(
        task=args.task,
        method=args.method,
        seed=args.seed,
        iterations=args.iterations,
        theta0=args.theta0,
        dataset=args.dataset,
        dataset_size=args.dataset_size,
        icpi=settings,
    )
    summary = run_icpi(cfg, args.out, llm=config_from_args(args))
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0
