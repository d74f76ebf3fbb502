"""Entry point of the ``icpi`` command.

Each verb lives in its own module under :mod:`icpi.cli` and exposes
``add_parser(subparsers)``, which registers the verb and sets ``func`` (a callable taking
the parsed namespace and returning an exit code) as the parser default.

Every verb shares one error boundary (:mod:`icpi.errors`): a user mistake prints one line
naming the problem and exits 2; work stopped before its end (an endpoint that stayed
down, workers that kept dying) prints one line and exits 3 (the same command resumes
it); anything else is a bug and shows its traceback. With
``--log-level DEBUG`` the first two show their traceback too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import textwrap
from collections.abc import Sequence

from icpi.config import plain_text

#: Libraries whose INFO records (import-time notices) are hidden unless --log-level DEBUG.
QUIET_LIBRARIES: tuple[str, ...] = ("OpenGL", "PIL", "matplotlib", "numexpr")

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


class HelpFormatter(argparse.HelpFormatter):
    """The help of every verb: plain text, paragraphs and lists kept, defaults shown.

    Descriptions are docstrings: reST markup is removed, each paragraph is wrapped on its
    own and each ``- `` item of a list stays on its own line. A flag's help ends with its
    default unless it states one, has none (``None``, a switch), or is required.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for para in re.split(r"\n\s*\n", plain_text(text).strip()):
            items = re.split(r"\n(?=\s*- )", para)
            for item in items:
                bullet = item.lstrip().startswith("- ")
                blocks.append(
                    textwrap.fill(
                        " ".join(item.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent + ("  " if bullet else ""),
                    )
                )
            blocks.append("")
        return "\n".join(blocks).rstrip("\n")

    def _get_help_string(self, action: argparse.Action) -> str:
        text = plain_text(action.help or "")
        no_default = (
            action.required
            or not action.option_strings
            or any(action.default is v for v in (None, argparse.SUPPRESS, False))
            or action.nargs == 0  # switches: --help, store_true / store_false
        )
        if no_default or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def _use_formatter(parser: argparse.ArgumentParser) -> None:
    """Give a parser and every parser below it :class:`HelpFormatter`."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _use_formatter(sub)


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
    _use_formatter(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``icpi`` command.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit code.
    """
    from icpi.errors import EXIT_ENDPOINT, EXIT_USER, ResumableError, UserError

    args = build_parser().parse_args(argv)
    level = args.log_level.upper()
    if level not in logging.getLevelNamesMapping():
        sys.stderr.write(f"icpi: unknown --log-level {args.log_level!r} (use DEBUG, INFO, ...)\n")
        return EXIT_USER
    from icpi.core.secrets import RedactingFilter

    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # no credential in a URL reaches the log
        handler.addFilter(RedactingFilter())
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # Third-party import-time notices (PyOpenGL's "No OpenGL_accelerate module") are
        # not the user's business below DEBUG.
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
    debug = level == "DEBUG"
    try:
        code: int = args.func(args)
    except UserError as err:
        _one_line(f"icpi {args.verb}: {err}", debug)
        return EXIT_USER
    except ResumableError as err:
        _one_line(f"icpi {args.verb}: {err}", debug)
        return EXIT_ENDPOINT
    except KeyboardInterrupt:
        _one_line(f"icpi {args.verb}: interrupted; rerun the same command to resume", debug)
        return 130
    return code


def _one_line(message: str, traceback: bool) -> None:
    """Print the message on stderr (with the traceback at DEBUG level)."""
    from icpi.core.secrets import redact_text

    if traceback:
        logging.getLogger("icpi").exception("%s", redact_text(message))
    else:
        sys.stderr.write(redact_text(message) + "\n")


if __name__ == "__main__":
    sys.exit(main())
