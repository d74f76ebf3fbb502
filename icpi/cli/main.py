"""Entry point of the ``icpi`` command.

Each verb lives in its own module under :mod:`icpi.cli` and exposes
``add_parser(subparsers)``, which registers the verb and sets ``func`` (a callable taking
the parsed namespace and returning an exit code) as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Verb modules, in the order ``icpi --help`` lists them.
VERB_MODULES: tuple[str, ...] = (
    "icpi.cli.demo",
    "icpi.cli.collect",
    "icpi.cli.run",
    "icpi.cli.bench",
    "icpi.cli.llm",
    "icpi.cli.lang",
    "icpi.cli.report",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every verb registered.

    Returns:
        The argument parser of the ``icpi`` command.
    """
    parser = argparse.ArgumentParser(
        prog="icpi", description="In-context policy improvement for dynamic robot skills."
    )
    parser.add_argument(
        "--log-level", default="INFO", help="Python logging level (DEBUG, INFO, WARNING, ...)."
    )
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``icpi`` command.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit code.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
