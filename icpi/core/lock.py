"""One process per output directory: an OS file lock held for the life of a run.

A run, benchmark, collection or language run directory is owned by the process that
holds ``<dir>/.lock`` (``fcntl.flock``, exclusive, non-blocking). The kernel releases the
lock when the process ends however it ends — ``kill -9`` included — so a crash never
leaves a stale lock behind; the file itself stays and only names the last holder. A second
process gets a :class:`~icpi.errors.RunDirError` naming the holder's PID and command.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType

from icpi.core.secrets import redact_command
from icpi.errors import RunDirError

#: Name of the lock file inside a locked directory.
LOCK_FILE = ".lock"


class DirLock:
    """An exclusive lock on a directory, held until :meth:`release` (or process exit)."""

    def __init__(self, directory: Path | str, what: str = "run") -> None:
        """Take the lock (creating the directory if needed).

        Args:
            directory: The directory to own.
            what: What the directory is (``run``, ``benchmark``, ...), for the message.

        Raises:
            RunDirError: If another process holds it (naming its PID and command), or the
                directory cannot be created or written (a file in its place, no permission).
        """
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # a file in the way, no write permission, a full disk
            why = f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
            if self.directory.exists() and not self.directory.is_dir():
                why = "it is a file"
            raise RunDirError(
                f"cannot use {self.directory} as the {what} directory: {why}; choose another"
                " output directory"
            ) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            raise RunDirError(
                f"{self.directory} is in use by another {what} (PID {holder.get('pid', '?')}:"
                f" {holder.get('command', '?')}); wait for it to finish, or choose another"
                " output directory"
            ) from None
        record = {"pid": os.getpid(), "command": redact_command(sys.argv), "since": time.time()}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (json.dumps(record) + "\n").encode(), 0)

    def _holder(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
