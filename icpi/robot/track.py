"""Ball-track bookkeeping, rest detection and the staleness watchdog (no ROS).

Times are seconds on one monotonic clock chosen by the caller (the node uses the
receive time; the camera's stamps may lag it by the camera latency).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RestRule:
    """When the ball counts as at rest."""

    window: float = 0.3
    """Length of the look-back window [s]."""
    radius: float = 0.003
    """Every point of the window lies within this distance of the window's mean [m]."""
    min_points: int = 5
    """Fewest points the window must hold (drop-outs delay the decision)."""


class BallTrack:
    """Points of the ball's track since a trial started, with rest detection.

    Thread-safe: the camera callback adds points while the trial thread reads them.
    """

    def __init__(self, rule: RestRule) -> None:
        """Create an empty track.

        Args:
            rule: Rest rule.
        """
        self.rule = rule
        self._lock = threading.Lock()
        self._t: list[float] = []
        self._p: list[tuple[float, float, float]] = []

    def clear(self) -> None:
        """Forget every point."""
        with self._lock:
            self._t.clear()
            self._p.clear()

    def add(self, t: float, xyz: Iterable[float]) -> None:
        """Append a point.

        Args:
            t: Time of the point [s].
            xyz: Ball position in the task frame [m].
        """
        x, y, z = (float(v) for v in xyz)
        with self._lock:
            self._t.append(float(t))
            self._p.append((x, y, z))

    def __len__(self) -> int:
        with self._lock:
            return len(self._t)

    def array(self, since: float = -math.inf) -> tuple[np.ndarray, np.ndarray]:
        """Times and positions of the points at or after ``since``.

        Args:
            since: Earliest time to include [s].

        Returns:
            ``(times (N,), positions (N, 3))``.
        """
        with self._lock:
            t = np.asarray(self._t, dtype=np.float64)
            p = np.asarray(self._p, dtype=np.float64).reshape(-1, 3)
        keep = t >= since
        return t[keep], p[keep]

    def rest_position(self, now: float, since: float = -math.inf) -> np.ndarray | None:
        """The ball's rest position if it has been at rest over the last window.

        Args:
            now: Current time [s].
            since: Ignore points before this time [s] (e.g. the end of the motion, so
                that a camera lagging behind the strike cannot report the start spot).

        Returns:
            Mean of the window's newest ``min_points`` positions (3,) [m], or ``None``
            while the ball moves or too few points came in.
        """
        t, p = self.array(since=max(now - self.rule.window, since))
        if len(t) < self.rule.min_points or t[-1] - t[0] < 0.6 * self.rule.window:
            return None
        mean = p.mean(axis=0)
        if float(np.max(np.linalg.norm(p[:, :2] - mean[:2], axis=1))) > self.rule.radius:
            return None
        # The window may still hold the last millimetres of creep: the estimate averages
        # only its newest ``min_points`` points (noise still averages out).
        out: np.ndarray = p[-self.rule.min_points :].mean(axis=0)
        return out


class Watchdog:
    """Tracks when each input was last heard of and reports the stale ones."""

    def __init__(self, timeouts: dict[str, float]) -> None:
        """Create the watchdog.

        Args:
            timeouts: Input name → largest allowed silence [s].
        """
        self.timeouts = dict(timeouts)
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def feed(self, name: str, t: float) -> None:
        """Record that an input was heard.

        Args:
            name: Input name.
            t: When [s].
        """
        with self._lock:
            self._last[name] = t

    def last(self, name: str) -> float | None:
        """When an input was last heard, or ``None``."""
        with self._lock:
            return self._last.get(name)

    def stale(self, now: float, names: Iterable[str] | None = None) -> list[str]:
        """Inputs silent for longer than their timeout (never heard counts as stale).

        Args:
            now: Current time [s].
            names: Inputs to check (default: all).

        Returns:
            Descriptions of the stale inputs.
        """
        out = []
        with self._lock:
            for name in names if names is not None else self.timeouts:
                last = self._last.get(name)
                limit = self.timeouts[name]
                if last is None:
                    out.append(f"{name}: nothing received")
                elif now - last > limit:
                    out.append(f"{name}: silent for {now - last:.2f} s (limit {limit:.2f} s)")
        return out
