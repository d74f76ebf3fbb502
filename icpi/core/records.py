"""Attempt records and the loop state the pieces of the core see."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """Convert numpy values and tuples nested in ``obj`` into plain JSON data.

    Non-finite floats become ``None`` so that the records stay strict JSON.

    Args:
        obj: Data made of dicts, lists, tuples, numbers, strings, numpy arrays and scalars.

    Returns:
        The same data built from dict, list, str, int, float, bool and None only.
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


@dataclass(frozen=True)
class Feedback:
    """What a reward provider returns for one action."""

    reward: float
    """Scalar reward (higher is better; robots use −cost)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Task feedback shown to later prompts (e.g. relative error e, outcome, cost, verdict)."""


@dataclass
class Attempt:
    """One finished iteration of the loop: the action tried and what came back."""

    iteration: int
    """Index of the iteration (0-based, contiguous in a buffer)."""
    action: Any
    """The action evaluated, as JSON data (θ vector, response text, ...)."""
    reward: float
    """Reward of the action."""
    info: dict[str, Any] = field(default_factory=dict)
    """Feedback of the reward provider."""
    valid: bool = True
    """True if the action came from a valid model answer; False for fallbacks and initial
    actions."""
    source: str = "model"
    """``model``, ``fallback`` or ``initial``."""
    prompt: Any = None
    """The rendered prompt (text or chat messages); ``None`` when no model was asked."""
    samples: list[str] = field(default_factory=list)
    """Raw completions, in order, over all sampling rounds."""
    parse_errors: list[str | None] = field(default_factory=list)
    """Parse error code per sample (``None`` for valid ones)."""
    selection: dict[str, Any] = field(default_factory=dict)
    """Selector details (chosen index, votes, scores, ...)."""
    llm: dict[str, Any] = field(default_factory=dict)
    """Model accounting: calls, prompt_tokens, completion_tokens, latency_s, cached."""
    timing: dict[str, float] = field(default_factory=dict)
    """Wall times: total_s, model_s, reward_s, overhead_s."""
    time: float = 0.0
    """Unix time at which the attempt finished."""

    def to_dict(self) -> dict[str, Any]:
        """Return the attempt as JSON data.

        Returns:
            A dict of the fields, numpy values converted.
        """
        out: dict[str, Any] = jsonable(dataclasses.asdict(self))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attempt:
        """Rebuild an attempt from :meth:`to_dict` output.

        Args:
            data: The JSON data.

        Returns:
            The attempt.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        reward = kwargs.get("reward")
        kwargs["reward"] = float("nan") if reward is None else float(reward)
        return cls(**kwargs)

    def view(self) -> dict[str, Any]:
        """Return the flat mapping a prompt template formats for this attempt.

        Returns:
            ``{"iteration", "action", "reward", **info}``.
        """
        return {
            "iteration": self.iteration,
            "action": self.action,
            "reward": self.reward,
            **self.info,
        }


@dataclass
class LoopState:
    """What the context builder, prompt, selector and reward provider see at one step."""

    iteration: int
    """Index of the iteration being run."""
    history: Sequence[Attempt]
    """Finished attempts, oldest first."""
    task: Mapping[str, Any] = field(default_factory=dict)
    """Static task description (goal, problem text, bounds, ...)."""

    @property
    def last(self) -> Attempt | None:
        """The latest finished attempt, if any."""
        return self.history[-1] if self.history else None

    @property
    def best(self) -> Attempt | None:
        """The finished attempt with the highest finite reward, if any."""
        finite = [a for a in self.history if math.isfinite(a.reward)]
        return max(finite, key=lambda a: a.reward) if finite else None
