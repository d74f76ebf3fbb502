"""Files that survive a kill: atomic replacement and append-only JSON lines.

One implementation for every writer of the package (run directories, datasets, summaries):
a file is either replaced atomically (written to a temporary file beside it, flushed, then
renamed over it) or appended one complete JSON line at a time; a torn last line left by a
kill is dropped when read back.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from icpi.core.records import jsonable


@contextlib.contextmanager
def atomic_path(path: Path | str, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it over ``path`` if the block succeeds.

    Args:
        path: The file to replace.
        mode: Permissions of the new file (``mkstemp`` makes 0600; outputs are shared).

    Yields:
        The temporary path to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Replace a text file atomically.

    Args:
        path: The file.
        text: Its new content (UTF-8).
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path | str, data: Any) -> None:
    """Replace a JSON file atomically (numpy values converted, indented).

    Args:
        path: The file.
        data: JSON-like data.
    """
    write_text_atomic(path, json.dumps(jsonable(data), indent=2) + "\n")


def _json_line(record: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(dict(record)), sort_keys=True, ensure_ascii=False) + "\n"


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Atomically replace a JSON-lines file.

    Args:
        path: The file.
        records: All its records.
    """
    write_text_atomic(path, "".join(_json_line(r) for r in records))


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
