"""Reward providers: turn an action into a :class:`~icpi.core.records.Feedback`.

- :class:`CallableReward`: any external function (a robot rollout returning −cost, an env).
- :class:`VerifierReward`: a rule-based check (exact answer, equation check), reward for
  pass / fail.
- :class:`LLMJudgeReward`: a language model scores the action on a numeric scale.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from icpi.core.parsing import find_numbers, normalise_answer
from icpi.core.prompts import fields
from icpi.core.records import Feedback, LoopState
from icpi.core.samplers import Sampler

log = logging.getLogger(__name__)


class RewardProvider(Protocol):
    """Evaluates an action."""

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Evaluate one action.

        Args:
            action: The action (θ vector, answer text, ...).
            state: The loop state.

        Returns:
            Reward and task feedback.
        """
        ...


class CallableReward:
    """Wrap an external function returning a reward, ``(reward, info)`` or Feedback."""

    def __init__(self, fn: Callable[[Any], float | tuple[float, Mapping[str, Any]] | Feedback]):
        """Create the provider.

        Args:
            fn: Called with the action.
        """
        self.fn = fn

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Evaluate the action with the wrapped function.

        Args:
            action: The action.
            state: Unused.

        Returns:
            The feedback.

        Raises:
            TypeError: If the function returns something else.
        """
        out = self.fn(action)
        if isinstance(out, Feedback):
            return out
        if isinstance(out, tuple):
            reward, info = out
            return Feedback(float(reward), dict(info))
        if isinstance(out, int | float):
            return Feedback(float(out))
        raise TypeError(f"reward function returned {type(out).__name__}")


class VerifierReward:
    """Rule-based verification: ``reward_pass`` if the check holds, else ``reward_fail``."""

    def __init__(
        self,
        check: Callable[[Any, LoopState], bool],
        *,
        reward_pass: float = 1.0,
        reward_fail: float = 0.0,
    ) -> None:
        """Create the provider.

        Args:
            check: Returns whether the action is correct; an exception counts as a failure.
            reward_pass: Reward of a correct action.
            reward_fail: Reward of a wrong one.
        """
        self.check = check
        self.reward_pass = reward_pass
        self.reward_fail = reward_fail

    @classmethod
    def exact_answer(
        cls, expected: str, normalise: Callable[[str], str] = normalise_answer, **kw: Any
    ) -> VerifierReward:
        """Build a verifier comparing the normalised action with an expected answer.

        Args:
            expected: The reference answer.
            normalise: Applied to both sides.
            **kw: ``reward_pass`` / ``reward_fail``.

        Returns:
            The provider.
        """
        target = normalise(expected)
        return cls(lambda action, _s: normalise(str(action)) == target, **kw)

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Verify the action.

        Args:
            action: The action.
            state: Passed to the check.

        Returns:
            The reward and ``info["correct"]``.
        """
        try:
            ok = bool(self.check(action, state))
            error = None
        except Exception as exc:  # a verifier crash is a failed check, not a crashed run
            ok, error = False, f"{type(exc).__name__}: {exc}"
            log.warning("verifier raised %s", error)
        info: dict[str, Any] = {"correct": ok}
        if error:
            info["verifier_error"] = error
        return Feedback(self.reward_pass if ok else self.reward_fail, info)


class LLMJudgeReward:
    """A language model scores the action; the first number of its answer, clipped, is the score."""

    def __init__(
        self,
        sampler: Sampler,
        template: str,
        *,
        low: float = 1.0,
        high: float = 10.0,
        default: float | None = None,
        seed: int | None = 0,
    ) -> None:
        """Create the provider.

        Args:
            sampler: Sampler of the judge model (greedy decoding recommended).
            template: Judge prompt with ``{action}`` and task fields, asking for a score.
            low: Lowest score; answers are clipped to ``[low, high]``.
            high: Highest score.
            default: Reward when the judge gives no number (``None``: ``low``).
            seed: Seed of the judge's call.
        """
        self.sampler = sampler
        self.template = template
        self.low = low
        self.high = high
        self.default = low if default is None else default
        self.seed = seed

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Ask the judge for a score.

        Args:
            action: The action (formatted as ``{action}``).
            state: Task fields are available to the template.

        Returns:
            The score as reward, with the judge's answer in ``info``.
        """
        prompt = self.template.format_map(fields({**state.task, "action": action}))
        batch = self.sampler.sample(prompt, 1, self.seed)
        text = batch.texts[0] if batch.texts else ""
        numbers = [float(t) for t in find_numbers(text)]
        finite = [x for x in numbers if math.isfinite(x)]
        ok = bool(finite)
        score = min(max(finite[0], self.low), self.high) if ok else self.default
        if not ok:
            log.warning("judge gave no score in %r; using %g", text[:80], score)
        return Feedback(
            score,
            {"judge_answer": text, "judge_ok": ok, "judge_tokens": batch.completion_tokens},
        )
