"""Completion cache: a local sqlite3 file keyed by a hash of the full request.

The key covers the endpoint identity, model, mode, messages or prompt, and every sampling
parameter (seed and ``n`` included). Requests never carry the API key, so neither does the
cache. For the embedded server the endpoint identity is the model file, not its ephemeral
port, so a run replays across processes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

#: Bump when the meaning of a cached entry changes.
CACHE_FORMAT = 1


def canonical_json(obj: Any) -> str:
    """Serialise JSON data deterministically (sorted keys, no whitespace).

    Args:
        obj: JSON-serialisable data.

    Returns:
        The canonical JSON text.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: dict[str, Any]) -> str:
    """Hash a full request description into a cache key.

    Args:
        request: JSON data describing the request (no credentials).

    Returns:
        The SHA-256 hex digest of the canonical request, prefixed by the cache format.
    """
    text = canonical_json({"cache_format": CACHE_FORMAT, **request})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CompletionCache:
    """A persistent map from request key to response, safe across threads and processes."""

    def __init__(self, path: Path | str) -> None:
        """Open (and create if needed) the cache file.

        Args:
            path: The sqlite3 file.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
        # One opener at a time (threads and processes): SQLite answers a second connection
        # that changes the journal mode "database is locked" at once, without waiting.
        guard = self.path.with_name(self.path.name + ".lock")
        with open(guard, "a") as fh, self._lock:
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process; only a power cut may lose the last entry.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS completions ("
                " key TEXT PRIMARY KEY, request TEXT NOT NULL, response TEXT NOT NULL,"
                " created REAL NOT NULL)"
            )
            self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        """Look a response up.

        Args:
            key: A key from :func:`request_key`.

        Returns:
            The cached response data, or ``None`` on a miss.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT response FROM completions WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(row[0])
        return data

    def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        """Store a response (replacing any previous one for the key).

        Args:
            key: A key from :func:`request_key`.
            request: The request data the key was computed from (stored for inspection).
            response: JSON data to return on later hits.
        """
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions (key, request, response, created)"
                " VALUES (?, ?, ?, ?)",
                (key, canonical_json(request), canonical_json(response), time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM completions").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
