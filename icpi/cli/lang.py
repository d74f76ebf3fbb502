"""``icpi lang``: ICRL prompting, its baselines or ME-ICPO on a language task.

The flags are generated from the settings dataclasses: the run-level fields of
:class:`icpi.language.config.LangConfig`, each task's settings and each method's settings
(a flag names the tasks or methods it applies to, and is refused with another); and the
LLM settings. ``--config FILE`` sets the same keys (``run:`` and ``llm:`` sections), and
flags override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any


def _json_object(text: str) -> dict[str, Any]:
    """Parse ``--extra-body``: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"top_k\": 20}'")
    return value


def add_setting_flags(group: Any) -> None:
    """Register one flag per task and method setting (``--step-judge``, ``--k``, ...).

    A setting several classes share gets one flag; when their types differ (each method's
    own ``ablation`` choices) the flag takes text and the chosen class validates it.

    Args:
        group: The argument group.
    """
    from icpi.config import add_field_flag
    from icpi.language.methods import load_methods
    from icpi.language.tasks import load_tasks

    owners: dict[tuple[str, Any], list[str]] = {}  # (field, type) -> tasks / methods
    first: dict[tuple[str, Any], type] = {}
    classes: list[tuple[str, type]] = [
        *((n, c.Settings) for n, c in load_tasks().items()),
        *((n, c.Settings) for n, c in load_methods().items()),
    ]
    for name, settings in classes:
        hints = typing.get_type_hints(settings)
        for f in dataclasses.fields(settings):
            key = (f.name, hints[f.name])
            owners.setdefault(key, []).append(name)
            first.setdefault(key, settings)
    names: dict[str, list[tuple[str, Any]]] = {}
    for key in owners:
        names.setdefault(key[0], []).append(key)
    for fname, keys in names.items():
        everyone = [o for k in keys for o in owners[k]]
        note = f" [{', '.join(everyone)}]"
        if len(keys) == 1:
            rename = {"puzzles_file": "puzzles"}.get(fname)
            add_field_flag(group, first[keys[0]], fname, path=("run",), name=rename, note=note)
            continue
        choices = "; ".join(
            f"{', '.join(owners[k])}: {', '.join(map(str, _choices(k[1])))}" for k in keys
        )
        doc = fname.replace("_", " ").capitalize()
        group.add_argument(
            f"--{fname.replace('_', '-')}",
            dest=f"cfg:run.{fname}",
            default=argparse.SUPPRESS,
            metavar="TEXT",
            help=f"{doc} ({choices}; default: unset).{note}",
        )


def _choices(hint: Any) -> list[Any]:
    """The values of a ``Literal[...]`` (or ``Literal[...] | None``) type."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return [v for a in args for v in typing.get_args(a)] if args else []


def add_parser(subparsers: Any) -> None:
    """Register the ``lang`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    from icpi.config import add_config_flag, add_flags
    from icpi.language.config import LangConfig
    from icpi.language.methods import load_methods
    from icpi.language.runner import PER_CALL
    from icpi.language.tasks import load_tasks
    from icpi.llm.config import add_llm_arguments

    p = subparsers.add_parser(
        "lang",
        help="Language tasks (Game of 24, writing, math) with ICRL prompting or ME-ICPO.",
        description="Run one method on N problems for R rounds and write a resumable run "
        "directory with records.jsonl and summary.json (success rate and running-max "
        "success per round, tokens per round). Defaults follow the papers (temperature "
        "0.6, top_p 0.95, judge 1024 tokens at temperature 0; ME-ICPO k = entropy_k = "
        "16); use --k, --entropy-k, --max-tokens and --judge-tokens to shrink a run for "
        f"the embedded model. Tasks: {', '.join(load_tasks())}. Methods: "
        f"{', '.join(load_methods())}.",
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
    # The prompt style follows --mode (chat or completion); settings get their own group.
    add_flags(
        g, LangConfig, path=("run",), skip={"chat", "extra_body", "task_settings", "settings"}
    )
    g.add_argument(
        "--extra-body",
        dest="cfg:run.extra_body",
        type=_json_object,
        default=argparse.SUPPRESS,
        metavar="JSON",
        help="Extra request fields sent with every call, a JSON object (e.g. a model's"
        ' no-thinking switch: \'{"chat_template_kwargs": {"enable_thinking": false}}\');'
        " recorded in config.json and part of the cache key.",
    )
    s = p.add_argument_group("task and method settings (each applies to those listed)")
    add_setting_flags(s)
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
    from icpi.config import flag_layer, read_verb_config
    from icpi.errors import ConfigError
    from icpi.language.config import load_lang_config
    from icpi.language.runner import PER_CALL, run_language
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
    cfg = load_lang_config(
        file.get("run"), flags.get("run"), {"chat": llm.mode == "chat"}, where=where
    )
    summary = run_language(cfg, args.out, llm=llm, concurrency=args.llm_concurrency)
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0
