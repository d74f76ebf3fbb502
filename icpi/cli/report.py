"""``icpi report``: write one self-contained HTML page for a run or a benchmark directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register the ``report`` verb.

    Args:
        subparsers: The ``add_subparsers`` object of the top-level parser.
    """
    from icpi.report.page import DEFAULT_MAX_VIDEOS

    p = subparsers.add_parser(
        "report",
        help="Write one self-contained HTML page for a run or a benchmark directory.",
        description=(
            "Summary table, curves, θ and error per iteration, prompts and answers, and"
            " re-simulated clips of each run's first and best rollout, in one HTML file."
        ),
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="Run or benchmark directory.")
    p.add_argument("--out", type=Path, help="HTML file to write (default: DIR/report.html).")
    p.add_argument(
        "--max-videos",
        type=int,
        default=DEFAULT_MAX_VIDEOS,
        help=(
            "Distinct rollouts rendered as clips at most (0: none); each task × method's"
            f" first seed comes first (default {DEFAULT_MAX_VIDEOS})."
        ),
    )
    p.add_argument(
        "--video-format",
        choices=("auto", "mp4", "gif"),
        default="auto",
        help="Clip format: auto (MP4, GIF when MP4 cannot be written), mp4 or gif.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the verb.

    Args:
        args: Parsed arguments.

    Returns:
        Exit code.
    """
    from icpi.report import write_report

    # A directory that cannot be reported raises ReportError (a UserError): the CLI's
    # error boundary prints it in one line and exits 2.
    result = write_report(
        args.dir, args.out, max_videos=args.max_videos, video_format=args.video_format
    )
    check = f"{result.identical} identical"
    if result.differing:
        check += f", {result.differing} differ (max |Δ| {result.max_abs_difference:.3g} m)"
    if result.kind == "language run":
        sys.stdout.write(
            f"Report of language run {args.dir}: rounds, prompts, responses and rewards,"
            f" {result.bytes / 1e3:.0f} kB.\n"
        )
    else:
        sys.stdout.write(
            f"Report of {result.kind} {args.dir}: {result.runs} runs, {result.clips} clips"
            f" (re-simulated costs vs recorded: {check}), {result.bytes / 1e6:.1f} MB.\n"
        )
    for note in result.notes:
        sys.stdout.write(f"Note: {note}\n")
    sys.stdout.write(f"Report: {result.path.resolve()}\n")
    return 0
