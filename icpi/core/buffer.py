"""Append-only experience buffer: one JSON line per finished attempt.

Each attempt is written and flushed as soon as it finishes, so a killed run loses at most
the attempt in progress. On restart the finished attempts are loaded and not redone. A
first ``header`` line records the run's fingerprint (the resolved configuration); resuming
with a different fingerprint is refused rather than mixing two runs. A line cut off by a
kill mid-write is dropped and the file truncated back to its last complete line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from icpi.core.files import write_text_atomic
from icpi.core.records import Attempt, jsonable
from icpi.errors import RunDirError

log = logging.getLogger(__name__)

#: Format version written in the header line.
BUFFER_FORMAT = 1


class BufferMismatchError(RunDirError):
    """The buffer file belongs to a run with another fingerprint."""


class ExperienceBuffer:
    """Finished attempts, in memory and (optionally) in an append-only JSONL file."""

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        fingerprint: Mapping[str, Any] | None = None,
        fsync: bool = False,
    ) -> None:
        """Open the buffer, loading the attempts already in ``path``.

        Args:
            path: JSONL file; ``None`` keeps attempts in memory only.
            fingerprint: JSON data identifying the run (e.g. the resolved config). Stored in
                the header of a new file and compared with that of an existing one.
            fsync: Also ``os.fsync`` after each attempt (survives power loss, not just kills).

        Raises:
            BufferMismatchError: If ``path`` holds a run with another fingerprint.
            ValueError: If a complete line of the file is not valid JSON.
        """
        self.path = Path(path) if path is not None else None
        self.fingerprint = jsonable(dict(fingerprint or {}))
        self.fsync = fsync
        self._attempts: list[Attempt] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size > 0:
                self._load()
            else:
                self._write_line({"kind": "header", "format": BUFFER_FORMAT, **self._header()})

    def _header(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint}

    def _load(self) -> None:
        assert self.path is not None
        raw = self.path.read_bytes()
        good_end = raw.rfind(b"\n") + 1
        if good_end < len(raw):
            log.warning(
                "%s: dropping an incomplete last line (%d bytes) left by an interrupted write",
                self.path,
                len(raw) - good_end,
            )
            with self.path.open("r+b") as fh:
                fh.truncate(good_end)
        header_seen = False
        for lineno, line in enumerate(raw[:good_end].decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RunDirError(
                    f"{self.path}:{lineno}: not JSON ({exc}); the buffer is damaged: move it"
                    " away to start the run afresh"
                ) from exc
            kind = data.get("kind")
            if kind == "header":
                header_seen = True
                stored = data.get("fingerprint", {})
                if self.fingerprint and stored != self.fingerprint:
                    raise BufferMismatchError(
                        f"{self.path} belongs to another run (fingerprint differs); use a new "
                        "run directory or the same configuration to resume"
                    )
            elif kind == "attempt":
                attempt = Attempt.from_dict(data["attempt"])
                if attempt.iteration != len(self._attempts):
                    raise RunDirError(
                        f"{self.path}:{lineno}: attempt {attempt.iteration} out of order "
                        f"(expected {len(self._attempts)}): two processes wrote this buffer, or"
                        " it was edited; move it away to start the run afresh"
                    )
                self._attempts.append(attempt)
        if not header_seen:
            raise RunDirError(f"{self.path}: no header line; not an experience buffer")
        if self._attempts:
            log.info("%s: resuming after %d finished attempts", self.path, len(self._attempts))

    def _write_line(self, data: Mapping[str, Any]) -> None:
        assert self.path is not None
        line = json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())

    def append(self, attempt: Attempt) -> None:
        """Add a finished attempt and persist it at once.

        Args:
            attempt: The attempt; its ``iteration`` must equal ``len(self)``.

        Raises:
            ValueError: If the iteration index is not the next one.
        """
        if attempt.iteration != len(self._attempts):
            raise ValueError(
                f"attempt {attempt.iteration} appended out of order (expected "
                f"{len(self._attempts)})"
            )
        if self.path is not None:
            self._write_line({"kind": "attempt", "attempt": attempt.to_dict()})
        self._attempts.append(attempt)

    @property
    def attempts(self) -> list[Attempt]:
        """The finished attempts, oldest first (a copy)."""
        return list(self._attempts)

    def __len__(self) -> int:
        return len(self._attempts)

    def __iter__(self) -> Iterator[Attempt]:
        return iter(list(self._attempts))


def replace_fingerprint(path: Path, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Give a buffer file's header the fingerprint ``new`` where it holds ``old``.

    For a run whose configuration gained keys that do not change it (see
    :meth:`icpi.core.rundir.RunDir.open`). Nothing happens where the file is missing or
    already holds ``new`` (a start killed before its configuration was rewritten).

    Args:
        path: The buffer file.
        old: The fingerprint it was written with.
        new: The fingerprint it gets.

    Raises:
        BufferMismatchError: If its header holds neither (the file belongs to another run).
    """
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").split("\n")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        header = None
    wanted = jsonable(dict(new))
    if isinstance(header, dict) and header.get("fingerprint") == wanted:
        return
    if not isinstance(header, dict) or header.get("fingerprint") != jsonable(dict(old)):
        raise BufferMismatchError(
            f"{path} does not belong to this run (fingerprint differs): move it away to start"
            " the run afresh"
        )
    header["fingerprint"] = wanted
    lines[0] = json.dumps(header, ensure_ascii=False, allow_nan=False)
    write_text_atomic(path, "\n".join(lines))
