"""Run directories: one per run, holding everything needed to inspect or resume it.

Layout::

    <run>/config.json       resolved configuration (secrets removed), written first
    <run>/meta.json         seed, package versions, git SHA, host, start time
    <run>/sessions.jsonl    one line per start (resume) of the run: time, PID, command,
                            settings that do not change the result (timeouts, offline, ...)
    <run>/attempts.jsonl    the experience buffer (one line per finished attempt)
    <run>/llm_calls.jsonl   one record per model request (tokens, latency, texts)

Opening an existing directory with the same configuration resumes it; a different
configuration is refused with the settings that differ, so two runs never mix.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icpi.core.buffer import ExperienceBuffer
from icpi.core.files import append_jsonl, read_jsonl, write_jsonl
from icpi.core.records import jsonable
from icpi.core.secrets import redact, redact_command
from icpi.errors import RunDirError

log = logging.getLogger(__name__)

#: Format of config.json (2: the typed configuration of icpi 0.2).
CONFIG_FORMAT = 2
#: Distributions whose versions are recorded in meta.json.
PACKAGES = ("icpi", "numpy", "scipy", "openai", "llama_cpp_python", "mujoco", "gymnasium")


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

    @property
    def sessions_file(self) -> Path:
        """``sessions.jsonl`` (one line per start of the run)."""
        return self.path / "sessions.jsonl"

    @classmethod
    def open(
        cls,
        path: Path | str,
        config: Mapping[str, Any],
        seed: int | None,
        session: Mapping[str, Any] | None = None,
    ) -> RunDir:
        """Create a run directory, or reopen it to resume the same run.

        Args:
            path: The directory.
            config: Resolved configuration: what determines the run's results (secrets
                are removed before writing; ``format`` is added).
            seed: Run seed (recorded in meta.json).
            session: Settings of this start that do not change the results (timeouts,
                offline replay, log file), appended to ``sessions.jsonl``.

        Returns:
            The run directory.

        Raises:
            RunDirError: If the directory holds a run with another configuration, or one
                written by an earlier version of the package.
        """
        run = cls(Path(path))
        run.path.mkdir(parents=True, exist_ok=True)
        clean = jsonable(redact({"format": CONFIG_FORMAT, **config}))
        if run.config_file.exists():
            try:
                stored = json.loads(run.config_file.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise RunDirError(f"{run.config_file} is unreadable ({err})") from None
            if not isinstance(stored, dict) or stored.get("format") != CONFIG_FORMAT:
                raise RunDirError(
                    f"{run.path} holds a run written by an earlier version of icpi (config"
                    f" format {stored.get('format', 1) if isinstance(stored, dict) else '?'},"
                    f" this version writes {CONFIG_FORMAT}); its files are kept as they are,"
                    " but it cannot be resumed: choose a new directory"
                )
            if stored != clean:
                diff = ", ".join(_differences(stored, clean)[:6])
                raise RunDirError(
                    f"{run.path} holds a run with another configuration ({diff}); rerun with"
                    " the same settings to resume it, or choose a new directory"
                )
            log.info("reopening run directory %s", run.path)
            run._log_session(session)
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
        run._log_session(session)
        return run

    def _log_session(self, session: Mapping[str, Any] | None) -> None:
        import os
        import sys

        entry = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "pid": os.getpid(),
            "command": redact_command(sys.argv),
            **(session or {}),
        }
        append_jsonl(self.sessions_file, redact(entry))

    def buffer(self, fsync: bool = False) -> ExperienceBuffer:
        """Open the run's experience buffer (resuming any finished attempts).

        Args:
            fsync: Force each attempt to disk.

        Returns:
            The buffer, fingerprinted with the stored configuration.
        """
        config = json.loads(self.config_file.read_text())
        return ExperienceBuffer(self.attempts_file, fingerprint=config, fsync=fsync)


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """The dotted keys at which two JSON values differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        # What the user set (run, llm) first; what follows from it (instance, θ0) after.
        first = {"run": 0, "llm": 1}
        for key in sorted(set(old) | set(new), key=lambda k: (first.get(str(k), 2), str(k))):
            sub = f"{where}.{key}" if where else str(key)
            if key not in old or key not in new:
                out.append(f"{sub}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}")
            else:
                out += _differences(old[key], new[key], sub)
        return out
    return [] if old == new else [f"{where or 'config'}: {old!r} -> {new!r}"]


__all__ = [
    "CONFIG_FORMAT",
    "RunDir",
    "append_jsonl",
    "git_sha",
    "package_versions",
    "read_jsonl",
    "redact",
    "write_jsonl",
]
