"""How long will it take? The expected duration of a job from its measured model calls.

Model calls dominate the time of every model-using run (the embedded SmolLM2-135M needs
seconds per call on two cores, a served model a fraction of a second; a rollout takes
milliseconds), so the estimate is

    runs × steps per run (rollouts, rounds) × measured model seconds per step
    / steps in flight at once.

The seconds are measured, never assumed: :class:`ExpectationNotice` logs the estimate once,
as soon as the first step of the job whose model calls reached the endpoint has been
timed — a warning when it is long (:data:`LONG_S`), so that a nine-hour benchmark says so
in its first minute. A step answered from the completion cache counts as done but times
nothing. Any verb can use it: ``icpi run`` and ``icpi bench`` feed it one rollout at a
time from the client's statistics (:attr:`~icpi.llm.client.LLMClient.stats`: ``calls``,
``cache_hits``, ``live_latency_s``); ``icpi lang`` can feed it rounds.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: An expected duration at least this long is logged as a warning [s].
LONG_S = 120.0


def format_duration(seconds: float) -> str:
    """A duration for people: ``40 s``, ``5.5 min``, ``9.1 h``.

    Args:
        seconds: The duration.

    Returns:
        The text (``unknown`` for NaN or inf).
    """
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Estimate:
    """The expected duration of the model-using steps still to do."""

    steps: int
    """Steps still to do (runs × rollouts or rounds per run)."""
    seconds_per_step: float
    """Measured model time of one step (its calls, re-samples included) [s]."""
    concurrency: int = 1
    """Steps in flight at once (``--llm-concurrency``; the embedded server answers one)."""
    unit: str = "rollout"
    """What a step is, for the message."""

    @property
    def seconds(self) -> float:
        """Expected wall time [s]."""
        return self.steps * self.seconds_per_step / max(1, self.concurrency)

    def describe(self) -> str:
        """One line: the duration and how it was computed.

        Returns:
            E.g. ``about 5.5 min more: 19 rollouts × 17.40 s of model calls each (measured)``.
        """
        parallel = f", {self.concurrency} at once" if self.concurrency > 1 else ""
        plural = "" if self.steps == 1 else "s"
        return (
            f"about {format_duration(self.seconds)} more: {self.steps} {self.unit}{plural} ×"
            f" {self.seconds_per_step:.2f} s of model calls each (measured{parallel})"
        )


class ExpectationNotice:
    """Logs the expected duration once the first model step has been timed (thread-safe)."""

    def __init__(
        self,
        what: str,
        steps: int,
        concurrency: int = 1,
        unit: str = "rollout",
        long_s: float = LONG_S,
    ) -> None:
        """Create the notice.

        Args:
            what: What is estimated, for the message (``run runs/x``, ``benchmark b/``).
            steps: Model-using steps the whole job will do (runs × steps per run).
            concurrency: Steps in flight at once.
            unit: What a step is (``rollout``, ``round``).
            long_s: An estimate at least this long is a warning; shorter ones are INFO.
        """
        self.what = what
        self.steps = steps
        self.concurrency = concurrency
        self.unit = unit
        self.long_s = long_s
        self.estimate: Estimate | None = None
        self._done = 0
        self._lock = threading.Lock()

    def observe(self, live_seconds: float, live: bool = True) -> Estimate | None:
        """Count one model-using step done; log the estimate at the first timed one.

        Args:
            live_seconds: Wall time of the step's calls that reached the endpoint [s].
            live: Whether any of its calls reached the endpoint (``False``: all were
                answered from the cache, which times nothing).

        Returns:
            The estimate when this step produced it, else ``None``.
        """
        with self._lock:
            self._done += 1
            if self.estimate is not None or not live or not live_seconds > 0:
                return None
            left = max(0, self.steps - self._done)
            self.estimate = Estimate(left, live_seconds, self.concurrency, self.unit)
        if left:
            level = logging.WARNING if self.estimate.seconds >= self.long_s else logging.INFO
            log.log(level, "%s: %s", self.what, self.estimate.describe())
        return self.estimate


__all__ = ["LONG_S", "Estimate", "ExpectationNotice", "format_duration"]
