"""Request/response records: one per model call, with tokens and latency.

Records are appended to a JSONL file as they happen (if a path is given) and summed into
in-memory statistics. They hold the prompt, the completions and the request key, never the
API key.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CallRecord:
    """One request to the model (or one cache hit)."""

    key: str
    """Cache key of the request (hash of the full request)."""
    endpoint: str
    """Endpoint identity (base URL, or ``embedded://<model file>``)."""
    model: str
    """Model name sent."""
    mode: str
    """``chat`` or ``completion``."""
    request: dict[str, Any]
    """Messages or prompt and sampling parameters."""
    texts: list[str]
    """Completions returned, one per sample."""
    finish_reasons: list[str | None]
    """Finish reason per sample."""
    prompt_tokens: int
    """Prompt tokens reported by the server (summed over the HTTP requests)."""
    completion_tokens: int
    """Completion tokens reported by the server (summed over the HTTP requests)."""
    latency_s: float
    """Wall time of the call, seconds (cache lookup time on a hit)."""
    cached: bool
    """Whether the answer came from the cache."""
    http_requests: int
    """HTTP requests this call issued (SDK retries not counted; 0 on a cache hit)."""
    request_ids: list[str] = field(default_factory=list)
    """Server request ids, when the server sends them."""
    time: float = 0.0
    """Unix time at which the call finished."""
    error: str | None = None
    """Why the call failed (then ``texts`` is empty); ``None`` on success."""

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON data.

        Returns:
            A dict of the fields.
        """
        return dataclasses.asdict(self)


@dataclass
class CallStats:
    """Running totals over the calls of one client."""

    calls: int = 0
    """Calls answered (live or from the cache)."""
    cache_hits: int = 0
    """Calls answered from the cache."""
    http_requests: int = 0
    """HTTP requests issued (SDK retries not counted)."""
    prompt_tokens: int = 0
    """Prompt tokens of live calls."""
    completion_tokens: int = 0
    """Completion tokens of live calls."""
    latency_s: float = 0.0
    """Summed wall time of all calls, seconds."""
    live_latency_s: float = 0.0
    """Summed wall time of live calls, seconds."""
    errors: int = 0
    """Calls that ended in an exception."""

    def add(self, rec: CallRecord) -> None:
        """Fold one record into the totals.

        Args:
            rec: The record.
        """
        self.calls += 1
        self.latency_s += rec.latency_s
        self.http_requests += rec.http_requests
        if rec.cached:
            self.cache_hits += 1
        else:
            self.prompt_tokens += rec.prompt_tokens
            self.completion_tokens += rec.completion_tokens
            self.live_latency_s += rec.latency_s

    def to_dict(self) -> dict[str, Any]:
        """Return the totals as JSON data.

        Returns:
            A dict of the fields.
        """
        return dataclasses.asdict(self)


class CallLog:
    """Thread-safe sink of :class:`CallRecord` s: statistics plus an optional JSONL file."""

    def __init__(self, path: Path | str | None = None) -> None:
        """Create the log.

        Args:
            path: JSONL file to append to; ``None`` keeps only statistics.
        """
        self.path = Path(path) if path is not None else None
        self.stats = CallStats()
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, rec: CallRecord) -> None:
        """Record one call.

        Args:
            rec: The record.
        """
        with self._lock:
            self.stats.add(rec)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")

    def add_error(self, rec: CallRecord | None = None) -> None:
        """Count a call that ended in an exception, writing its record if given.

        Args:
            rec: The failed call (with ``error`` set).
        """
        with self._lock:
            self.stats.errors += 1
            if rec is not None and self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
