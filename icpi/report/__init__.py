"""``icpi report``: one self-contained HTML page for a run or a benchmark directory.

The page holds the summary table (for a benchmark: every column of
:func:`icpi.manipulation.bench.summarise`), best-so-far and cost curves, per-iteration θ
and error, every prompt and answer, and clips of each run's first and best rollout,
re-simulated headless with their cost checked against the recorded one. Everything is
inline (CSS, script, figures, clips as data URIs): the file opens offline anywhere.
"""

from __future__ import annotations

from icpi.report.page import DEFAULT_MAX_VIDEOS, ReportResult, write_report
from icpi.report.rundata import ReportError

__all__ = ["DEFAULT_MAX_VIDEOS", "ReportError", "ReportResult", "write_report"]
