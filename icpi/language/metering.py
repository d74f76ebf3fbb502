"""Model use of a language run, counted in one place, and the samplers of each role.

- :class:`Meter` / :class:`MeteredSampler`: every model call of a round (policy, judge,
  critique, summaries, entropy samples) counted in one place.
- :class:`Samplers`: the samplers of one run, by role, sharing a meter.
- :class:`RoundUsage`: a reward-provider wrapper stamping the round's token use into the
  feedback, so it is stored with the attempt and survives a resume.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from icpi.core import Feedback, LoopState, RewardProvider, SampleBatch, Sampler
from icpi.core.prompts import Prompt
from icpi.llm.errors import LLMEmptyResponseError

log = logging.getLogger(__name__)


@dataclass
class Meter:
    """Running totals of model use."""

    calls: int = 0
    """Sampling calls."""
    prompt_tokens: int = 0
    """Prompt tokens."""
    completion_tokens: int = 0
    """Completion tokens."""
    by_role: dict[str, int] = field(default_factory=dict)
    """Tokens per role."""
    live_calls: int = 0
    """Calls that reached the endpoint (not answered from the cache)."""
    live_s: float = 0.0
    """Wall time of those calls, seconds (kept out of the records: it differs run to run)."""

    def add(self, role: str, batch: SampleBatch) -> None:
        """Count one batch.

        Args:
            role: Who asked (``policy``, ``judge``, ...).
            batch: The batch.
        """
        self.calls += batch.calls
        self.prompt_tokens += batch.prompt_tokens
        self.completion_tokens += batch.completion_tokens
        tokens = batch.prompt_tokens + batch.completion_tokens
        self.by_role[role] = self.by_role.get(role, 0) + tokens
        if not batch.cached:
            self.live_calls += batch.calls
            self.live_s += batch.latency_s

    def snapshot(self) -> dict[str, Any]:
        """Return the totals as JSON data.

        Returns:
            ``{"calls", "prompt_tokens", "completion_tokens", "tokens", "by_role"}``.
        """
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.prompt_tokens + self.completion_tokens,
            "by_role": dict(self.by_role),
        }

    def since(self, mark: dict[str, Any]) -> dict[str, Any]:
        """Return the use since a :meth:`snapshot`.

        Args:
            mark: An earlier snapshot.

        Returns:
            The difference, same keys.
        """
        now = self.snapshot()
        roles = {
            r: v - mark["by_role"].get(r, 0)
            for r, v in now["by_role"].items()
            if v != mark["by_role"].get(r, 0)
        }
        return {k: now[k] - mark[k] for k in now if k != "by_role"} | {"by_role": roles}


class MeteredSampler:
    """A sampler that counts its calls into a shared :class:`Meter`."""

    def __init__(self, inner: Sampler, meter: Meter, role: str) -> None:
        """Wrap a sampler.

        Args:
            inner: The sampler.
            meter: Shared meter.
            role: Role name recorded with the tokens.
        """
        self.inner = inner
        self.meter = meter
        self.role = role

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Sample and count.

        Args:
            prompt: Text or chat messages.
            n: Number of completions.
            seed: Sampling seed.

        Returns:
            The inner sampler's batch.
        """
        batch = self.inner.sample(prompt, n, seed)
        self.meter.add(self.role, batch)
        return batch


class BlankOnEmpty:
    """A sampler whose all-empty answer is an empty text, not an error (judges, helpers).

    A judge or summary that says nothing gives no verdict (reward 0) or an empty comment;
    it never stops the round it serves.
    """

    def __init__(self, inner: Sampler) -> None:
        """Wrap a sampler.

        Args:
            inner: The sampler.
        """
        self.inner = inner

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Sample; an :class:`~icpi.llm.errors.LLMEmptyResponseError` gives ``n`` empty texts.

        Args:
            prompt: Text or chat messages.
            n: Number of completions.
            seed: Sampling seed.

        Returns:
            The inner sampler's batch, or empty texts.
        """
        try:
            return self.inner.sample(prompt, n, seed)
        except LLMEmptyResponseError as exc:
            log.warning("empty answer taken as no answer: %s", exc)
            return SampleBatch(texts=[""] * n)


@dataclass
class Samplers:
    """The samplers of one run, by role, all counting into :attr:`meter`."""

    policy: Sampler
    """Draws responses (ICRL attempts, ME-ICPO candidates and entropy samples)."""
    judge: Sampler
    """Greedy judge (LLM step rewards, writing coherence); an empty answer is no verdict."""
    helper: Sampler
    """Greedy helper text (Self-Refine critiques, Reflexion reflections, summaries); an
    empty answer is an empty text."""
    meter: Meter
    """Shared totals."""

    @classmethod
    def build(cls, make: Callable[[str], Sampler], meter: Meter | None = None) -> Samplers:
        """Create metered samplers from a factory.

        Args:
            make: Returns the raw sampler of a role (``policy``, ``judge``, ``helper``).
            meter: Meter to count into (default: a new one).

        Returns:
            The samplers.
        """
        m = meter or Meter()
        return cls(
            policy=MeteredSampler(make("policy"), m, "policy"),
            judge=BlankOnEmpty(MeteredSampler(make("judge"), m, "judge")),
            helper=BlankOnEmpty(MeteredSampler(make("helper"), m, "helper")),
            meter=m,
        )


class RoundUsage:
    """Wrap a reward provider: add the meter's use since the round began to the feedback."""

    def __init__(self, inner: RewardProvider, meter: Meter) -> None:
        """Wrap a provider.

        Args:
            inner: The reward provider.
            meter: The run's meter.
        """
        self.inner = inner
        self.meter = meter
        self.mark = meter.snapshot()

    def start_round(self) -> None:
        """Mark the start of a round."""
        self.mark = self.meter.snapshot()

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Evaluate, then stamp ``info["usage"]``.

        Args:
            action: The action.
            state: The loop state.

        Returns:
            The inner feedback with ``usage`` added.
        """
        fb = self.inner(action, state)
        return Feedback(fb.reward, {**fb.info, "usage": self.meter.since(self.mark)})
