"""Helpers of the CLI tests (not a conftest: test modules import it by name)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ICPI = str(Path(sys.executable).parent / "icpi")  # the installed console script


def run_icpi(*argv: str, timeout: float = 300, env: dict[str, str] | None = None):
    """``icpi ARGV`` in a fresh process; returns the completed process (text)."""
    return subprocess.run(
        [ICPI, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
