"""``icpi lang``: ICRL prompting, its baselines or ME-ICPO on a language task."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TASKS = ("game24", "writing", "math")
METHODS = ("icrl-preset", "icrl-autonomous", "best-of-n", "self-refine", "reflexion", "me-icpo")
ABLATIONS = (
    "zero-reward", "no-reward", "short-context", "explore-only", "exploit-only",
    "no-instruction", "no-entropy", "oracle",
)  # fmt: skip


def add_parser(subparsers: Any) -> None:
    """Register the ``lang`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    from icpi.llm.config import add_llm_arguments

    p = subparsers.add_parser(
        "lang",
        help="Language tasks (Game of 24, writing, math) with ICRL prompting or ME-ICPO.",
        description="Run one method on N problems for R rounds and write a resumable run "
        "directory with records.jsonl and summary.json (success rate and running-max "
        "success per round, tokens per round). Defaults follow the papers (temperature "
        "0.6, top_p 0.95; ME-ICPO k = entropy_k = 16); use --k, --entropy-k and "
        "--max-tokens to shrink a run for the embedded model.",
    )
    # Policy temperature, top_p and max_tokens are the flags below (the papers' defaults);
    # the seed of each call derives from --seed, and stop sequences come from the task.
    add_llm_arguments(
        p,
        skip=(
            "sampling.temperature",
            "sampling.top_p",
            "sampling.max_tokens",
            "sampling.seed",
            "sampling.n",
            "sampling.stop",
        ),
    )
    p.add_argument("--task", required=True, choices=TASKS, help="Language task.")
    p.add_argument("--method", default="icrl-preset", choices=METHODS, help="Method.")
    p.add_argument(
        "--ablation",
        choices=ABLATIONS,
        help="ICRL: zero-reward, no-reward, short-context, explore-only, exploit-only, "
        "no-instruction; ME-ICPO: no-entropy, no-reward, oracle.",
    )
    p.add_argument("--problems", type=int, default=5, help="Number of problems.")
    p.add_argument("--rounds", type=int, default=5, help="Rounds per problem.")
    p.add_argument("--out", type=Path, required=True, help="Run directory (resumed if present).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the problems and model calls.")
    p.add_argument("--temperature", type=float, default=0.6, help="Policy temperature.")
    p.add_argument("--top-p", type=float, default=0.95, help="Policy nucleus mass.")
    p.add_argument("--max-tokens", type=int, default=1000, help="Tokens per response.")
    p.add_argument("--helper-tokens", type=int, default=100, help="Tokens per summary/critique.")
    p.add_argument("--judge-tokens", type=int, default=16, help="Tokens per judge verdict.")
    g = p.add_argument_group("tasks")
    g.add_argument(
        "--step-judge", choices=("rule", "llm"), default="rule", help="Game of 24 step rewards."
    )
    g.add_argument(
        "--puzzles",
        choices=("solvable", "unsolvable", "any"),
        default="solvable",
        help="Which generated Game of 24 puzzles.",
    )
    g.add_argument("--math-file", help="Math questions: JSONL with question and answer.")
    g.add_argument(
        "--threshold", type=float, default=7.0, help="Writing coherence counted as success."
    )
    m = p.add_argument_group("ME-ICPO")
    m.add_argument("--k", type=int, default=16, help="Candidates per round.")
    m.add_argument("--entropy-k", type=int, default=16, help="Samples per entropy estimate.")
    m.add_argument("--final-k", type=int, default=16, help="Final samples (Mean@k, Maj@k).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the verb.

    Args:
        args: Parsed arguments.

    Returns:
        Exit code (2 on an invalid combination of options).
    """
    from icpi.language.runner import LangConfig, run_language
    from icpi.llm.config import config_from_args

    llm = config_from_args(args)
    try:
        cfg = LangConfig(
            task=args.task,
            method=args.method,
            ablation=args.ablation,
            problems=args.problems,
            rounds=args.rounds,
            seed=args.seed,
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.max_tokens,
            helper_tokens=args.helper_tokens,
            judge_tokens=args.judge_tokens,
            step_judge=args.step_judge,
            puzzles=args.puzzles,
            math_file=args.math_file,
            threshold=args.threshold,
            k=args.k,
            entropy_k=args.entropy_k,
            final_k=args.final_k,
            chat=llm.mode == "chat",
        )
    except ValueError as exc:
        from icpi.errors import ConfigError

        raise ConfigError(str(exc)) from None
    summary = run_language(cfg, args.out, llm=llm)
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0
