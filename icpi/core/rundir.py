"""Run directories: one per run, holding everything needed to inspect or resume it.

Layout::

    <run>/config.json       resolved configuration (secrets removed), written first
    <run>/meta.json         seed, package versions, git SHA, host, start time
    <run>/attempts.jsonl    the experience buffer (one line per finished attempt)
    <run>/llm_calls.jsonl   one record per model request (tokens, latency, texts)

Opening an existing directory with the same configuration resumes it; a different
configuration is refused, so two runs never mix.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icpi.core.buffer import ExperienceBuffer
from icpi.core.records import jsonable

log = logging.getLogger(__name__)

#: Config keys whose values are never written (matched case-insensitively, as substrings).
SECRET_MARKERS = ("api_key", "apikey", "token", "secret", "password")
#: Distributions whose versions are recorded in meta.json.
PACKAGES = ("icpi", "numpy", "scipy", "openai", "llama_cpp_python", "mujoco", "gymnasium")


def redact(config: Any) -> Any:
    """Drop secret-looking keys from nested configuration data.

    Args:
        config: JSON-like data.

    Returns:
        A copy without keys containing any of :data:`SECRET_MARKERS`.
    """
    if isinstance(config, Mapping):
        return {
            str(k): redact(v)
            for k, v in config.items()
            if not any(m in str(k).lower() for m in SECRET_MARKERS)
        }
    if isinstance(config, list | tuple):
        return [redact(v) for v in config]
    return config


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Return the installed versions of the packages a run depends on.

    Args:
        names: Distribution names.

    Returns:
        ``{distribution: version or None}``.
    """
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_sha(cwd: Path | None = None) -> str | None:
    """Return the git commit of the working tree (suffixed ``-dirty`` if modified).

    Args:
        cwd: Directory inside the repository; default: this package's directory.

    Returns:
        The SHA, or ``None`` outside a git checkout.
    """
    where = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    path: Path
    """The directory."""

    @property
    def config_file(self) -> Path:
        """``config.json``."""
        return self.path / "config.json"

    @property
    def meta_file(self) -> Path:
        """``meta.json``."""
        return self.path / "meta.json"

    @property
    def attempts_file(self) -> Path:
        """``attempts.jsonl`` (the experience buffer)."""
        return self.path / "attempts.jsonl"

    @property
    def records_file(self) -> Path:
        """``records.jsonl`` (one line per finished iteration, appended as it happens)."""
        return self.path / "records.jsonl"

    @property
    def llm_log_file(self) -> Path:
        """``llm_calls.jsonl`` (pass as the LLM config's ``log_path``)."""
        return self.path / "llm_calls.jsonl"

    @classmethod
    def open(cls, path: Path | str, config: Mapping[str, Any], seed: int | None) -> RunDir:
        """Create a run directory, or reopen it to resume the same run.

        Args:
            path: The directory.
            config: Resolved configuration (secrets are removed before writing).
            seed: Run seed (recorded in meta.json).

        Returns:
            The run directory.

        Raises:
            ValueError: If the directory holds a run with another configuration.
        """
        run = cls(Path(path))
        run.path.mkdir(parents=True, exist_ok=True)
        clean = jsonable(redact(config))
        if run.config_file.exists():
            stored = json.loads(run.config_file.read_text())
            if stored != clean:
                raise ValueError(
                    f"{run.path} holds a run with another configuration; choose a new directory"
                )
            log.info("reopening run directory %s", run.path)
            return run
        run.config_file.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
        meta = {
            "seed": seed,
            "versions": package_versions(),
            "git_sha": git_sha(),
            "python": platform.python_version(),
            "host": platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        run.meta_file.write_text(json.dumps(meta, indent=2) + "\n")
        log.info("run directory %s; config %s", run.path, json.dumps(clean, sort_keys=True))
        return run

    def buffer(self, fsync: bool = False) -> ExperienceBuffer:
        """Open the run's experience buffer (resuming any finished attempts).

        Args:
            fsync: Force each attempt to disk.

        Returns:
            The buffer, fingerprinted with the stored configuration.
        """
        config = json.loads(self.config_file.read_text())
        return ExperienceBuffer(self.attempts_file, fingerprint=config, fsync=fsync)


def _json_line(record: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(dict(record)), sort_keys=True, ensure_ascii=False) + "\n"


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Atomically replace a JSON-lines file.

    Args:
        path: The file.
        records: All its records.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(_json_line(r) for r in records), encoding="utf-8")
    os.replace(tmp, path)


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record to a JSON-lines file (written through before returning).

    Args:
        path: The file.
        record: The record.
    """
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(_json_line(record))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a torn last line (from a kill) is dropped.

    Args:
        path: The file (missing: no records).

    Returns:
        The records.
    """
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out
