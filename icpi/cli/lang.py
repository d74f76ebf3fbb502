"""``icpi lang``: ICRL prompting, its baselines or ME-ICPO on a language task."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TASKS = ("game24", "writing", "math")
METHODS = (
    "icrl-preset", "icrl-autonomous", "best-of-n", "self-refine", "reflexion", "cot-only",
    "long-cot", "me-icpo",
)  # fmt: skip
ABLATIONS = (
    "zero-reward", "no-reward", "short-context", "explore-only", "exploit-only",
    "no-instruction", "no-entropy", "no-entropy+no-reward", "oracle",
)  # fmt: skip
SPLITS = ("tot-test", "all", "random", "random-unsolvable", "random-any")


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
        conflict_handler="resolve",
    )
    add_llm_arguments(p)
    p.add_argument("--task", required=True, choices=TASKS, help="Language task.")
    p.add_argument("--method", default="icrl-preset", choices=METHODS, help="Method.")
    p.add_argument(
        "--ablation",
        choices=ABLATIONS,
        help="ICRL: zero-reward, no-reward, short-context, explore-only, exploit-only, "
        "no-instruction; ME-ICPO: no-entropy, no-reward, no-entropy+no-reward, oracle.",
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
    p.add_argument(
        "--context-tokens",
        type=int,
        help="Prompt budget in tokens: the newest attempts that fit are kept (default: the "
        "embedded server's context minus --max-tokens, else 32768 minus --max-tokens).",
    )
    p.add_argument(
        "--llm-concurrency",
        type=int,
        default=1,
        help="Problems run at once against the endpoint (results do not depend on it).",
    )
    g = p.add_argument_group("tasks")
    g.add_argument(
        "--step-judge",
        choices=("llm", "rule"),
        default="llm",
        help="Game of 24 step rewards: the model's own judge (the paper) or an exact solver.",
    )
    g.add_argument(
        "--answer-judge",
        choices=("llm", "verifier"),
        default="llm",
        help="Game of 24 bonus for a valid equation: the model's own judge (the paper) or "
        "the exact verifier (leaks the answer). Success is always the verifier's.",
    )
    g.add_argument(
        "--split",
        choices=SPLITS,
        default="tot-test",
        help="Game of 24 puzzles: tot-test = ranks 901-1000 of the 1362 (the papers' 100), "
        "all = every ranked puzzle, random* = seeded draws.",
    )
    g.add_argument(
        "--puzzles",
        dest="puzzles_file",
        metavar="FILE",
        help="Game of 24 puzzle file: CSV with a 'Puzzles' column and optional 'Rank' (Tree "
        "of Thoughts' 24.csv reads as is) or JSONL with 'numbers' and optional 'rank'.",
    )
    g.add_argument("--math-file", help="Math questions: JSONL with question and answer.")
    g.add_argument(
        "--threshold", type=float, default=7.0, help="Writing coherence counted as success."
    )
    m = p.add_argument_group("ME-ICPO")
    m.add_argument("--k", type=int, default=16, help="Candidates per round.")
    m.add_argument("--entropy-k", type=int, default=16, help="Samples per entropy estimate.")
    m.add_argument("--final-k", type=int, default=16, help="Final samples (Mean@k, Maj@k).")
    e = p.add_argument_group("expert steering (seed 001, inference-time pieces)")
    e.add_argument(
        "--expert-share",
        type=float,
        default=0.0,
        help="Share of samples drawn with a solved example in context (ICPO: 0.125).",
    )
    e.add_argument(
        "--expert-file",
        help="JSONL of solved examples (question, solution); Game of 24: solver solutions.",
    )
    e.add_argument(
        "--expert-reject",
        action="store_true",
        help="ME-ICPO: drop expert candidates that disagree with the on-policy majority.",
    )
    e.add_argument(
        "--expert-bonus",
        type=float,
        default=0.0,
        help="ICRL: bonus for a full-reward expert-conditioned attempt, annealed to 0.",
    )
    e.add_argument(
        "--expert-anneal", type=int, default=10, help="Rounds over which the bonus decays."
    )
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
            answer_judge=args.answer_judge,
            split=args.split,
            puzzles_file=args.puzzles_file,
            math_file=args.math_file,
            threshold=args.threshold,
            k=args.k,
            entropy_k=args.entropy_k,
            final_k=args.final_k,
            chat=llm.mode == "chat",
            context_tokens=args.context_tokens,
            expert_share=args.expert_share,
            expert_file=args.expert_file,
            expert_reject=args.expert_reject,
            expert_bonus=args.expert_bonus,
            expert_anneal=args.expert_anneal,
        )
    except ValueError as exc:
        sys.stderr.write(f"icpi lang: {exc}\n")
        return 2
    try:
        summary = run_language(cfg, args.out, llm=llm, concurrency=args.llm_concurrency)
    except ValueError as exc:  # a bad puzzle file, a run cut short, another run's directory
        sys.stderr.write(f"icpi lang: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0
