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

import functools
import importlib.metadata
import json
import logging
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icpi.core.buffer import ExperienceBuffer, replace_fingerprint
from icpi.core.files import append_jsonl, read_jsonl, write_jsonl, write_text_atomic
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

    Read once per process (reading package metadata costs ~0.1 s).

    Args:
        names: Distribution names.

    Returns:
        ``{distribution: version or None}``.
    """
    return dict(_versions(tuple(names)))


@functools.cache
def _versions(names: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = []
    for name in names:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


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


def _write_config(run: RunDir, config: Mapping[str, Any]) -> None:
    """Write ``config.json`` atomically (a kill mid-write leaves the old one or the new)."""
    write_text_atomic(run.config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    path: Path
    """The directory."""
    pending: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The configuration to write on :meth:`settle`, when ``config.json`` was missing."""
    seed: int | None = field(default=None, compare=False, repr=False)
    """The run seed (for a ``meta.json`` written on :meth:`settle`)."""

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
        grow: Iterable[str] = (),
        config_format: int = CONFIG_FORMAT,
        legacy: Mapping[str, Any] | None = None,
    ) -> RunDir:
        """Create a run directory, or reopen it to resume (or extend) the same run.

        Args:
            path: The directory.
            config: Resolved configuration: what determines the run's results (secrets
                are removed before writing; ``format`` is added).
            seed: Run seed (recorded in meta.json).
            session: Settings of this start that do not change the results (timeouts,
                offline replay, log file), appended to ``sessions.jsonl``.
            grow: Dotted config keys of the run's budget (``run.iterations``,
                ``run.rounds``): a stored run that differs only in them, with a smaller
                value, is extended (``config.json`` then records the new budget); a smaller
                value than stored is refused — a run is extended, never cut.
            config_format: Format of ``config.json`` written (a kind of run whose keys
                changed counts its own formats, e.g. language runs).
            legacy: Dotted config keys added since runs were first written, each with the
                value that reproduces a run written before it existed (a setting added at
                a neutral default). A stored run that lacks such a key counts as having
                that value: where that makes it this run (or a smaller budget of it), it is
                resumed, and ``config.json`` and the buffer's header gain the key.

        Returns:
            The run directory.

        Raises:
            RunDirError: If the directory holds a run with another configuration, or one
                written by an earlier version of the package.
        """
        run = cls(Path(path))
        run.path.mkdir(parents=True, exist_ok=True)
        clean = jsonable(redact({"format": config_format, **config}))
        if run.config_file.exists():
            try:
                stored = json.loads(run.config_file.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise RunDirError(f"{run.config_file} is unreadable ({err})") from None
            if not isinstance(stored, dict) or stored.get("format") != config_format:
                raise RunDirError(
                    f"{run.path} holds a run written by an earlier version of icpi (config"
                    f" format {stored.get('format', 1) if isinstance(stored, dict) else '?'},"
                    f" this version writes {config_format}); its files are kept as they are,"
                    " but it cannot be resumed: choose a new directory"
                )
            filled = _fill(stored, legacy or {})
            if filled != stored and (filled == clean or _extends(filled, clean, grow, run.path)):
                added = [key for key in legacy or {} if not _has(stored, key)]
                log.info(
                    "%s was written before %s: resuming it at the values it ran with",
                    run.path,
                    ", ".join(added),
                )
                replace_fingerprint(
                    run.attempts_file, buffer_fingerprint(stored), buffer_fingerprint(clean)
                )
                _write_config(run, clean)
                stored = clean
            if stored != clean and _extends(stored, clean, grow, run.path):
                log.info("extending %s: %s", run.path, ", ".join(_differences(stored, clean)))
                _write_config(run, clean)
                stored = clean
            if stored != clean:
                diff = ", ".join(_differences(stored, clean)[:6])
                raise RunDirError(
                    f"{run.path} holds a run with another configuration ({diff}); rerun with"
                    " the same settings to resume it, or choose a new directory"
                )
            log.info("reopening run directory %s", run.path)
            run._log_session(session)
            return run
        found = [f.name for f in (run.meta_file, run.records_file, run.attempts_file) if f.exists()]
        if found:
            # config.json was deleted: check what the files say before writing anything, and
            # write it once the run has resumed (see settle), so that a wrong start leaves
            # the directory as it was.
            _check_orphans(run, clean, seed, found)
            log.warning(
                "%s has no config.json but holds %s; resuming, config.json is written back"
                " once the run's records have been replayed",
                run.path,
                ", ".join(found),
            )
            run = cls(run.path, pending=clean, seed=seed)
            run._log_session(session)
            return run
        _write_config(run, clean)
        run._write_meta(seed)
        log.info("run directory %s; config %s", run.path, json.dumps(clean, sort_keys=True))
        run._log_session(session)
        return run

    def settle(self) -> None:
        """Write ``config.json`` back if it was missing (call once the run has resumed)."""
        if self.pending is not None and not self.config_file.exists():
            _write_config(self, self.pending)
            if not self.meta_file.exists():
                self._write_meta(self.seed)
            log.info("wrote %s back", self.config_file)

    def _write_meta(self, seed: int | None) -> None:
        meta = {
            "seed": seed,
            "versions": package_versions(),
            "git_sha": git_sha(),
            "python": platform.python_version(),
            "host": platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_text_atomic(self.meta_file, json.dumps(meta, indent=2) + "\n")

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
        config = self.pending or json.loads(self.config_file.read_text())
        return ExperienceBuffer(
            self.attempts_file, fingerprint=buffer_fingerprint(config), fsync=fsync
        )


def buffer_fingerprint(config: Mapping[str, Any]) -> dict[str, Any]:
    """The experience buffer's fingerprint of a stored configuration.

    The budget is left out: a run extended to more iterations keeps its attempts.

    Args:
        config: The configuration as ``config.json`` records it.

    Returns:
        The fingerprint.
    """
    run = {k: v for k, v in config.get("run", {}).items() if k not in BUDGET_KEYS}
    return {**config, "run": run}


def _check_orphans(run: RunDir, config: dict[str, Any], seed: int | None, found: list[str]) -> None:
    """Refuse a start that does not match the files of a run whose config.json is gone.

    Raises:
        RunDirError: If ``meta.json`` records another seed, or the experience buffer
            another configuration; nothing is written.
    """
    lost = f"{run.path} holds a run ({', '.join(found)}) whose config.json is missing"
    if run.meta_file.exists():
        try:
            stored = json.loads(run.meta_file.read_text(encoding="utf-8")).get("seed")
        except (OSError, ValueError, AttributeError):
            stored = None
        if stored != seed:
            raise RunDirError(
                f"{lost}, and its meta.json records seed {stored}, not {seed}: rerun with"
                f" its settings (seed {stored}) to resume it, or choose a new directory"
            )
    if run.attempts_file.exists():
        try:
            with run.attempts_file.open(encoding="utf-8") as fh:
                header = json.loads(fh.readline())
        except (OSError, ValueError):
            header = None
        want = jsonable(buffer_fingerprint(config))
        if not isinstance(header, dict) or header.get("fingerprint") != want:
            raise RunDirError(
                f"{lost}, and its attempts.jsonl belongs to another configuration: rerun"
                " with its settings to resume it, or choose a new directory"
            )


#: Keys of ``run`` that are budgets (left out of the buffer's fingerprint).
BUDGET_KEYS = ("iterations", "rounds")


_MISSING = object()


def _get(data: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    out = dict(data)
    out[head] = _set(dict(out.get(head) or {}), rest, value) if rest else value
    return out


def _has(data: Any, dotted: str) -> bool:
    return _get(data, dotted, _MISSING) is not _MISSING


def _fill(stored: Any, legacy: Mapping[str, Any]) -> Any:
    """``stored`` with each missing ``legacy`` key (under a section it has) set to its value."""
    if not isinstance(stored, dict):
        return stored
    out = stored
    for key, value in legacy.items():
        parent = key.rpartition(".")[0]
        if not _has(out, key) and (not parent or isinstance(_get(out, parent), dict)):
            out = _set(out, key, jsonable(value))
    return out


def _extends(stored: Any, new: dict[str, Any], grow: Iterable[str], path: Path) -> bool:
    """Whether ``new`` is ``stored`` with a larger budget (a smaller one is refused)."""
    if not isinstance(stored, dict):
        return False
    same = stored
    for key in grow:
        same = _set(same, key, _get(new, key))
    if same != new:
        return False
    for key in grow:
        old, value = _get(stored, key), _get(new, key)
        if isinstance(old, int) and isinstance(value, int) and value < old:
            raise RunDirError(
                f"{path} holds a run with {key.rsplit('.', 1)[-1]}={old}; a run is extended,"
                f" never cut: ask for {old} or more, or choose a new directory"
            )
    return True


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
