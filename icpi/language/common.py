"""Pieces shared by the language improvers: token metering, samplers per role, parsing.

- :class:`Meter` / :class:`MeteredSampler`: every model call of a round (policy, judge,
  critique, summaries, entropy samples) counted in one place.
- :class:`Samplers`: the samplers of one run, by role, sharing a meter.
- :class:`ResponseParser`: accepts any non-empty response (ICRL's action is the text).
- :class:`RoundUsage`: a reward-provider wrapper stamping the round's token use into the
  feedback, so it is stored with the attempt and survives a resume.
- :class:`TokenBudget` / :class:`Budgeted` / :class:`OverflowGuard`: prompts cut to a token
  budget (newest examples kept); a context-length refusal is a failed round, not a crash.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from icpi.core import (
    Attempt,
    ContextBuilder,
    Feedback,
    LoopState,
    ParseResult,
    RewardProvider,
    SampleBatch,
    Sampler,
)
from icpi.core.expert import Schedule
from icpi.core.prompts import Prompt
from icpi.llm.errors import LLMBadRequestError, LLMEmptyResponseError, LLMUnavailableError

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


class ResponseParser:
    """Accept any non-empty response; the value is the stripped text (cut to a length)."""

    def __init__(self, max_chars: int = 4000) -> None:
        """Create the parser.

        Args:
            max_chars: Longest response kept, characters.
        """
        self.max_chars = max_chars

    def __call__(self, text: str) -> ParseResult:
        """Parse one response.

        Args:
            text: The completion.

        Returns:
            ``ok`` with the stripped text, or ``empty``.
        """
        stripped = (text or "").strip()
        if not stripped:
            return ParseResult(ok=False, error="empty", raw=text, detail="empty response")
        return ParseResult(ok=True, value=stripped[: self.max_chars], raw=text)


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


# --------------------------------------------------------------------------- token budget
#: Tokens per character assumed before any prompt has been measured (digits tokenise one
#: by one on small models: one token per character is the worst case).
PRIOR_TOKENS_PER_CHAR = 1.0
#: Safety factor on the measured tokens per character.
RATIO_MARGIN = 1.1
#: Each context-length error seen in a problem's history shrinks its budget by this factor.
OVERFLOW_SHRINK = 0.75
#: Prompt budget of an endpoint whose context length is unknown, tokens.
DEFAULT_CONTEXT_TOKENS = 32_768


class ContextOverflowError(RuntimeError):
    """The endpoint refused a prompt as longer than its context window."""


_OVERFLOW = re.compile(
    r"HTTP 400.*(context|maximum.{0,40}length|exceed|too long|too many tokens)",
    re.IGNORECASE | re.DOTALL,
)


def prompt_text(prompt: Prompt | None) -> str:
    """The text of a prompt (chat messages joined).

    Args:
        prompt: Text or chat messages.

    Returns:
        The text.
    """
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt)


class TokenBudget:
    """How many tokens a prompt may hold, and how many a text takes.

    Tokens are estimated from characters with the largest tokens-per-character ratio
    measured on this problem's earlier prompts (the server reports each prompt's tokens;
    single-sample calls only), times a margin, or :data:`PRIOR_TOKENS_PER_CHAR` before any
    measurement. Everything is derived from the history, so a resumed run builds the same
    prompts. A context-length error in the history shrinks the budget (never dies twice on
    the same length).
    """

    def __init__(self, tokens: int) -> None:
        """Create the budget.

        Args:
            tokens: Prompt tokens allowed (the endpoint's context minus the completion).

        Raises:
            ValueError: If ``tokens`` < 1.
        """
        if tokens < 1:
            raise ValueError(f"the context budget must be >= 1 token, got {tokens}")
        self.tokens = tokens

    @staticmethod
    def ratio(history: Sequence[Attempt]) -> float:
        """Tokens per character to assume, from the measured prompts.

        Args:
            history: Finished attempts.

        Returns:
            The ratio.
        """
        seen = []
        for a in history:
            text = prompt_text(a.prompt)
            p = int(a.llm.get("prompt_tokens", 0) or 0)
            if text and p > 0 and a.llm.get("calls") == 1 and len(a.samples) == 1:
                seen.append(p / len(text))
        return max(seen) * RATIO_MARGIN if seen else PRIOR_TOKENS_PER_CHAR

    @staticmethod
    def count(text: str, ratio: float) -> int:
        """Estimated tokens of a text.

        Args:
            text: The text.
            ratio: Tokens per character.

        Returns:
            The estimate (rounded up).
        """
        return math.ceil(len(text) * ratio)

    def limit(self, history: Sequence[Attempt]) -> int:
        """The budget after the context-length errors seen in the history.

        Args:
            history: Finished attempts.

        Returns:
            Tokens.
        """
        overflows = sum(
            str(e).startswith(ContextOverflowError.__name__)
            for a in history
            for e in a.llm.get("errors", [])
        )
        return int(self.tokens * OVERFLOW_SHRINK**overflows)


class Budgeted:
    """Keep the examples nearest the query (the list's end) that fit a token budget.

    Each example's ``block`` text is counted; the task text and instruction
    (``overhead(state)``) are counted first. Examples come oldest (or worst) first, so the
    newest (or best) are kept.
    """

    def __init__(
        self,
        inner: ContextBuilder,
        budget: TokenBudget,
        overhead: Callable[[LoopState], str],
        separator: str = "\n\n",
    ) -> None:
        """Wrap a context builder.

        Args:
            inner: Builds ``{"block": text}`` examples in prompt order.
            budget: The prompt budget.
            overhead: The rest of the prompt of a state (task text, instruction).
            separator: Text between parts of the prompt.
        """
        self.inner = inner
        self.budget = budget
        self.overhead = overhead
        self.separator = separator

    def build(self, state: LoopState) -> list[Mapping[str, Any]]:
        """Return the newest examples that fit.

        Args:
            state: The loop state.

        Returns:
            The kept examples, in prompt order.
        """
        return self.fit(self.inner.build(state), state)

    def fit(
        self, examples: Sequence[Mapping[str, Any]], state: LoopState
    ) -> list[Mapping[str, Any]]:
        """Keep the examples at the end of a list that fit the budget.

        Args:
            examples: ``{"block": text}`` examples in prompt order.
            state: The loop state (its history calibrates the token estimate).

        Returns:
            The kept examples, in prompt order.
        """
        ratio = self.budget.ratio(state.history)
        left = self.budget.limit(state.history) - self.budget.count(self.overhead(state), ratio)
        kept: list[Mapping[str, Any]] = []
        for ex in reversed(examples):
            cost = self.budget.count(str(ex["block"]) + self.separator, ratio)
            if cost > left:
                break
            left -= cost
            kept.append(ex)
        if len(kept) < len(examples):
            log.info("context: %d of %d examples fit the %d-token budget",
                     len(kept), len(examples), self.budget.limit(state.history))  # fmt: skip
        return kept[::-1]


class OverflowGuard:
    """A sampler that turns an endpoint's context-length refusal into ContextOverflowError.

    The loop then records a failed attempt (the run goes on) and :class:`TokenBudget`
    shrinks the next prompts.
    """

    def __init__(self, inner: Sampler) -> None:
        """Wrap a sampler.

        Args:
            inner: The sampler.
        """
        self.inner = inner

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Sample; re-raise a context-length refusal as :class:`ContextOverflowError`.

        Args:
            prompt: Text or chat messages.
            n: Number of completions.
            seed: Sampling seed.

        Returns:
            The inner sampler's batch.

        Raises:
            ContextOverflowError: The endpoint refused the prompt's length.
        """
        try:
            return self.inner.sample(prompt, n, seed)
        except (LLMBadRequestError, LLMUnavailableError) as exc:  # HTTP 400 (413, 422)
            if _OVERFLOW.search(str(exc)):
                raise ContextOverflowError(str(exc)) from exc
            raise


@dataclass(frozen=True)
class ExpertSettings:
    """Seed-001 steering of a loop (:mod:`icpi.core.expert`)."""

    demonstrations: Sequence[str] = ()
    """Solved examples (implicit expert forcing)."""
    share: float = 0.0
    """Expected share of expert-conditioned samples (0: off)."""
    reject: bool = False
    """Expert-region reject sampling (ME-ICPO: drop expert candidates that disagree with
    the on-policy majority)."""
    bonus: float = 0.0
    """Annealed expert bonus at round 0 (ICRL; 0: off)."""
    anneal_rounds: int = 10
    """Rounds over which the bonus decays to 0."""
    schedule: Schedule = "linear"
    """Decay schedule."""

    @property
    def active(self) -> bool:
        """Whether any expert piece is on."""
        return self.share > 0
