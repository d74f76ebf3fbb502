"""Fixtures of the CLI tests: the scripted OpenAI-compatible server and a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from icpi.llm.testing import FakeOpenAI

ICPI = str(Path(sys.executable).parent / "icpi")  # the installed console script


@pytest.fixture
def fake():
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ICPI_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ICPI_LLM_CACHE", str(tmp_path / "cache.sqlite3"))


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    import icpi.llm.client as client

    monkeypatch.setattr(client, "_BACKOFF", lambda state: 0.01)


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
