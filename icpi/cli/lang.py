"""``icpi lang``: ICRL prompting, its baselines or ME-ICPO on a language task.

The flags are the fields of :class:`icpi.language.runner.LangConfig` (and of the LLM
settings), generated from them; ``--config FILE`` sets the same keys (``run:`` and
``llm:`` sections), and flags override it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register the ``lang`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    from icpi.config import add_config_flag, add_flags
    from icpi.language.runner import PER_CALL, LangConfig
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
    p.add_argument("--out", type=Path, required=True, help="Run directory (resumed if present).")
    p.add_argument(
        "--llm-concurrency",
        type=int,
        default=1,
        help="Problems in flight at once against one endpoint (results are the same).",
    )
    add_config_flag(p)
    g = p.add_argument_group("run")
    # The prompt style follows --mode (chat or completion).
    add_flags(g, LangConfig, path=("run",), skip={"chat"}, rename={"puzzles_file": "puzzles"})
    add_llm_arguments(p, skip=tuple(f"sampling.{k}" for k in PER_CALL))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the verb.

    Args:
        args: Parsed arguments.

    Returns:
        Exit code.

    Raises:
        ConfigError: On an invalid setting or combination of settings.
    """
    from icpi.config import flag_layer, load, read_verb_config
    from icpi.errors import ConfigError
    from icpi.language.runner import PER_CALL, LangConfig, run_language
    from icpi.llm.config import LLMConfig

    if args.llm_concurrency < 1:
        raise ConfigError(f"--llm-concurrency must be >= 1, got {args.llm_concurrency}")
    file = read_verb_config(
        args.config,
        llm_keys_set_by_verb=PER_CALL,
        why="by the run settings (run.temperature, run.top_p, run.max_tokens, run.seed)"
        " and the task (stop), per call",
    )
    flags = flag_layer(args)
    llm = LLMConfig.from_sources(overrides=flags.get("llm"), config=file.get("llm"))
    where = f"{args.config} and the flags" if args.config else "the flags"
    cfg = load(
        LangConfig, file.get("run"), flags.get("run"), {"chat": llm.mode == "chat"}, where=where
    )
    summary = run_language(cfg, args.out, llm=llm, concurrency=args.llm_concurrency)
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0
