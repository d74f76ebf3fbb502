"""The driver ↔ arm contract on standard message types (encoded and checked here, no ROS).

Request (``std_msgs/Float64MultiArray`` on ``trial_request``): ``data`` is the flat list
``[trial_id, θ_1 … θ_d, goal_1 … goal_g]``; ``trial_id`` is a positive integer (exact in a
float64 below 2⁵³), θ in the skill's physical units, the goal in the task frame [m].

Result (``std_msgs/String`` on ``trial_result``): one JSON object

| key | type | meaning |
|---|---|---|
| ``trial_id`` | int | the request's id (0 when the request was unreadable) |
| ``status`` | str | one of :data:`STATUSES` |
| ``reason`` | str | why it is not ``ok`` (empty when ``ok``) |
| ``theta`` | list[float] | θ as executed (as requested: the arm never changes θ) |
| ``goal`` | list[float] | the goal [m] |
| ``outcome`` | list[float] | ball rest position xy [m] (``ok`` only) |
| ``e`` | list[float] | outcome − goal [m] (``ok`` only) |
| ``cost`` | float | ‖e‖ [m] (``ok`` only; NaN otherwise, written as null) |
| ``track`` | list[[t, x, y, z]] | ball track from the trial start [s, m]; last row: rest |
| ``timing`` | dict[str, float] | wall seconds spent per phase |
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STATUSES = ("ok", "refused", "estopped", "aborted", "busy", "malformed", "no_motion")
"""ok: done; refused: unsafe or not allowed (limits, θ bounds, trust region, the arm's speed
scaling or program state); estopped: the e-stop is (or became) engaged; aborted: the
watchdog, a timeout or the arm's driver stopped it; busy: a trial is already running;
malformed: the request could not be read; no_motion: the motion ran but the ball did not
move (no outcome: never scored nor relabelled)."""

MAX_TRIAL_ID = 2**53


class ContractError(ValueError):
    """A message does not follow the contract."""


@dataclass(frozen=True)
class TrialRequest:
    """One trial: run θ and score the outcome against the goal."""

    trial_id: int
    theta: tuple[float, ...]
    goal: tuple[float, ...]

    def encode(self) -> list[float]:
        """The request's ``Float64MultiArray.data``."""
        return [float(self.trial_id), *map(float, self.theta), *map(float, self.goal)]

    @classmethod
    def decode(cls, data: Sequence[float], theta_dim: int, goal_dim: int) -> TrialRequest:
        """Read and check a request.

        Args:
            data: The ``Float64MultiArray.data``.
            theta_dim: Number of θ parameters of the skill.
            goal_dim: Goal dimension.

        Returns:
            The request.

        Raises:
            ContractError: On a wrong length, a bad id, or non-finite numbers.
        """
        values = [float(v) for v in data]
        want = 1 + theta_dim + goal_dim
        if len(values) != want:
            raise ContractError(
                f"request must hold {want} numbers [trial_id, θ×{theta_dim}, goal×{goal_dim}],"
                f" got {len(values)}"
            )
        tid = values[0]
        if not (math.isfinite(tid) and tid == int(tid) and 0 < tid < MAX_TRIAL_ID):
            raise ContractError(f"trial_id must be a positive integer, got {tid!r}")
        if not all(math.isfinite(v) for v in values[1:]):
            raise ContractError(f"request {int(tid)} holds NaN or inf: {values[1:]}")
        return cls(
            trial_id=int(tid),
            theta=tuple(values[1 : 1 + theta_dim]),
            goal=tuple(values[1 + theta_dim :]),
        )


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


@dataclass
class TrialResult:
    """The answer to a request (see the module docstring for the JSON form)."""

    trial_id: int
    status: str
    reason: str = ""
    theta: list[float] = field(default_factory=list)
    goal: list[float] = field(default_factory=list)
    outcome: list[float] = field(default_factory=list)
    e: list[float] = field(default_factory=list)
    cost: float = math.nan
    track: list[list[float]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the trial ran and was scored."""
        return self.status == "ok"

    def trajectory(self) -> np.ndarray:
        """The ball's track as an (N, 3) xyz array [m] (last row: the rest estimate)."""
        if not self.track:
            return np.zeros((0, 3))
        return np.asarray(self.track, dtype=np.float64)[:, 1:4]

    def to_json(self) -> str:
        """The result as the JSON text of the ``std_msgs/String``."""
        body: dict[str, Any] = {
            "trial_id": int(self.trial_id),
            "status": self.status,
            "reason": self.reason,
            "theta": [float(v) for v in self.theta],
            "goal": [float(v) for v in self.goal],
            "outcome": [float(v) for v in self.outcome],
            "e": [float(v) for v in self.e],
            "cost": _num(self.cost),
            "track": [[round(float(v), 6) for v in row] for row in self.track],
            "timing": {k: round(float(v), 4) for k, v in self.timing.items()},
        }
        return json.dumps(body, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> TrialResult:
        """Read and check a result.

        Args:
            text: The ``std_msgs/String`` data.

        Returns:
            The result.

        Raises:
            ContractError: If it is not a JSON object of the contract.
        """
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as err:
            raise ContractError(f"result is not JSON: {err}") from err
        if not isinstance(raw, dict):
            raise ContractError("result must be a JSON object")
        try:
            status = str(raw["status"])
            if status not in STATUSES:
                raise ContractError(f"unknown status {status!r}")
            cost = raw.get("cost")
            out = cls(
                trial_id=int(raw["trial_id"]),
                status=status,
                reason=str(raw.get("reason", "")),
                theta=[float(v) for v in raw.get("theta", [])],
                goal=[float(v) for v in raw.get("goal", [])],
                outcome=[float(v) for v in raw.get("outcome", [])],
                e=[float(v) for v in raw.get("e", [])],
                cost=math.nan if cost is None else float(cost),
                track=[[float(v) for v in row] for row in raw.get("track", [])],
                timing={str(k): float(v) for k, v in raw.get("timing", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ContractError(f"result does not follow the contract: {err}") from err
        if out.ok and (len(out.outcome) != len(out.e) or not math.isfinite(out.cost)):
            raise ContractError("an ok result needs outcome, e and a finite cost")
        return out
