"""One process per output directory: an OS file lock held for the life of a run.

A run, benchmark, collection or language run directory is owned by the process that
holds ``<dir>/.lock`` (``fcntl.flock``, exclusive, non-blocking). The kernel releases the
lock when the process ends however it ends — ``kill -9`` included — so a crash never
leaves a stale lock behind; the file itself stays and only names the last holder (a
collection removes it when done: :meth:`DirLock.release` with ``remove``). A second
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
        self._fd: int | None = None
        while self._fd is None:
            fd = self._open(what)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder()
                os.close(fd)
                raise RunDirError(
                    f"{self.directory} is in use by another {what} (PID"
                    f" {holder.get('pid', '?')}: {holder.get('command', '?')}); wait for it to"
                    " finish, or choose another output directory"
                ) from None
            if _same_file(fd, self.path):
                self._fd = fd
            else:  # its last owner removed the file after we opened it: lock the new one
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        record = {"pid": os.getpid(), "command": redact_command(sys.argv), "since": time.time()}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (json.dumps(record) + "\n").encode(), 0)

    def _open(self, what: str) -> int:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # a file in the way, no write permission, a full disk
            why = f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
            if self.directory.exists() and not self.directory.is_dir():
                why = "it is a file"
            raise RunDirError(
                f"cannot use {self.directory} as the {what} directory: {why}; choose another"
                " output directory"
            ) from None

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

    def release(self, remove: bool = False) -> None:
        """Release the lock (idempotent).

        Args:
            remove: Also delete the lock file (a finished dataset keeps no ``.lock``). It is
                removed while still locked; a process that opened it meanwhile sees that
                and locks a new file.
        """
        if self._fd is not None:
            if remove:
                self.path.unlink(missing_ok=True)
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


def _same_file(fd: int, path: Path) -> bool:
    """Whether an open file is still the one at ``path`` (not removed or replaced)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)
