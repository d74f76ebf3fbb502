"""``icpi run``: improve one task instance with any method and write a run directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register the ``run`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    from icpi.config import add_config_flag
    from icpi.llm.config import add_llm_arguments
    from icpi.manipulation.config import add_run_flags
    from icpi.manipulation.methods import load_methods

    p = subparsers.add_parser(
        "run",
        help="Improve one task instance (ICPI or a baseline) and write a run directory.",
        description="Methods: " + ", ".join(load_methods()) + ". --method takes a method"
        " spec, the id with optional settings in brackets (icpi+[model=off],"
        " icpi[k=10;feature=raw]), as icpi bench --methods, config files, api.improve and"
        " ICPISampler do; the flags under 'method settings' set the same settings. Settings"
        " come from the flags, over a --config file, over the method's defaults;"
        " config.json records the resolved configuration, sessions.jsonl each start.",
    )
    p.add_argument("--out", type=Path, required=True, help="Run directory (resumed if present).")
    add_config_flag(p)
    add_run_flags(p)
    # The sampling seed and n of each call derive from --seed and the method's settings.
    add_llm_arguments(p, skip=("sampling.seed", "sampling.n"))
    p.set_defaults(func=run)


def resolve(args: argparse.Namespace) -> tuple[Any, Any]:
    """The run and LLM configurations of the parsed flags (flags > file > defaults).

    Args:
        args: Parsed arguments of ``icpi run``.

    Returns:
        ``(RunConfig, LLMConfig)``.

    Raises:
        ConfigError: On an invalid setting, or a per-call LLM setting in the file.
    """
    from icpi.config import flag_layer, read_verb_config
    from icpi.llm.config import LLMConfig
    from icpi.manipulation.config import expand_method_spec, load_run_config
    from icpi.manipulation.methods import get_method
    from icpi.manipulation.run import PER_CALL

    file = read_verb_config(
        args.config,
        llm_keys_set_by_verb=PER_CALL,
        why="per call by the method, from run.seed and its settings, e.g. n_samples",
    )
    flags = flag_layer(args)
    # A method spec's settings join the layer it was given in: a spec in the file sits
    # below the flags, one given as --method above the file.
    file_run, file_llm = expand_method_spec(file.get("run"), file.get("llm"), str(args.config))
    flag_run, flag_llm = expand_method_spec(flags.get("run"), flags.get("llm"), "the flags")
    where = f"{args.config} and the flags" if args.config else "the flags"
    cfg = load_run_config(file_run, flag_run, where=where)
    llm = LLMConfig.from_sources(
        overrides=flag_llm, config=file_llm, defaults=get_method(cfg.method).llm_defaults
    )
    return cfg, llm


def run(args: argparse.Namespace) -> int:
    """Run the verb.

    Args:
        args: Parsed arguments.

    Returns:
        Exit code.
    """
    from icpi.manipulation.run import run_method

    cfg, llm = resolve(args)
    summary = run_method(cfg, args.out, llm=llm)
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0
