"""Expert steering at inference time (ICPO, seed ``001_…``): the parts the core can host.

ICPO trains with GRPO on mixed on- and off-policy rollouts; the training is out of scope
here. Its three steering pieces work without gradients and plug into any loop:

- **Implicit expert forcing** (:class:`ExpertSampler`): a share of each call's samples is
  drawn with an expert demonstration (a solved example from an existing dataset) placed
  before the prompt; those samples are off-policy, expert-conditioned.
- **Expert-region reject sampling** (:class:`ExpertSelector` with ``accept``): an
  expert-conditioned sample that the method's own check finds unreliable is dropped
  before selection.
- **Annealed expert-bonus reward** (:class:`AnnealedExpertBonus`): a selected
  expert-conditioned action that succeeds (by the reward the method sees) earns
  ``beta × decay(iteration)`` extra, decaying from early guidance to autonomy
  (ICPO's schedules: linear, exponential, cosine).

The three share one :class:`ExpertSampler`, which remembers which samples of its last
call were expert-conditioned and which one was selected; give each loop its own.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

from icpi.core.parsing import ParseResult
from icpi.core.prompts import Prompt
from icpi.core.records import Feedback, LoopState
from icpi.core.rewards import RewardProvider
from icpi.core.samplers import SampleBatch, Sampler
from icpi.core.selectors import Selection, Selector

#: Text placed before the demonstration.
DEMO_HEADER = "A solved example, for reference:"
#: Parse error code of an expert-conditioned sample dropped by reject sampling.
EXPERT_REJECTED = "expert_rejected"

Schedule = Literal["linear", "exp", "cosine"]


def with_demonstration(prompt: Prompt, demo: str, header: str = DEMO_HEADER) -> Prompt:
    """Place a demonstration before a prompt (chat: at the start of the last user message).

    Args:
        prompt: Text or chat messages.
        demo: The demonstration.
        header: Text introducing it.

    Returns:
        The expert-conditioned prompt.
    """
    block = f"{header}\n{demo.strip()}\n\n"
    if isinstance(prompt, str):
        return block + prompt
    messages = [dict(m) for m in prompt]
    for m in reversed(messages):
        if m.get("role") == "user":
            m["content"] = block + str(m.get("content", ""))
            break
    else:
        messages.append({"role": "user", "content": block})
    return messages


class ExpertSampler:
    """Implicit expert forcing: a share of every call's samples sees a demonstration.

    For ``n`` samples, ``round(share × n)`` are expert-conditioned when that is at least 1;
    otherwise one sample is, with probability ``share × n`` (so one sample per round at
    ``share = 0.125`` is expert-conditioned in one round of eight on average). The draw and
    the demonstration are chosen from the call's seed, so a resumed run repeats them.
    """

    def __init__(
        self,
        inner: Sampler,
        demonstrations: Sequence[str],
        share: float = 0.125,
        header: str = DEMO_HEADER,
    ) -> None:
        """Wrap a sampler.

        Args:
            inner: The policy sampler.
            demonstrations: Solved examples (ICPO: 1 of 8 rollouts gets one).
            share: Expected share of expert-conditioned samples, in [0, 1].
            header: Text introducing a demonstration.

        Raises:
            ValueError: On a share outside [0, 1] or no demonstrations with a share > 0.
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"the expert share must be in [0, 1], got {share}")
        if share > 0 and not demonstrations:
            raise ValueError("expert forcing needs at least one demonstration")
        self.inner = inner
        self.demonstrations = list(demonstrations)
        self.share = share
        self.header = header
        self.last_expert: list[bool] = []
        """Which samples of the last call were expert-conditioned."""
        self.chosen_expert = False
        """Whether the sample selected from the last call was expert-conditioned."""

    def plan(self, n: int, seed: int | None) -> tuple[int, int | None]:
        """How many of ``n`` samples are expert-conditioned, and with which demonstration.

        Args:
            n: Samples of the call.
            seed: The call's seed.

        Returns:
            ``(count, demonstration index or None)``.
        """
        if self.share <= 0:
            return 0, None
        rng = random.Random(f"expert:{seed}")
        expected = self.share * n
        m = round(expected) if expected >= 1 else int(rng.random() < expected)
        m = min(max(m, 0), n)
        return (m, rng.randrange(len(self.demonstrations))) if m else (0, None)

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Draw ``n - m`` samples on the prompt and ``m`` on the expert-conditioned prompt.

        Args:
            prompt: Text or chat messages.
            n: Number of completions.
            seed: Sampling seed.

        Returns:
            One batch: the on-policy samples first, then the expert-conditioned ones.
        """
        m, demo = self.plan(n, seed)
        self.chosen_expert = False
        batches = []
        if n - m > 0:
            batches.append(self.inner.sample(prompt, n - m, seed))
        if m:
            assert demo is not None
            steered = with_demonstration(prompt, self.demonstrations[demo], self.header)
            batches.append(self.inner.sample(steered, m, seed))
        self.last_expert = [False] * (n - m) + [True] * m
        return SampleBatch(
            texts=[t for b in batches for t in b.texts],
            prompt_tokens=sum(b.prompt_tokens for b in batches),
            completion_tokens=sum(b.completion_tokens for b in batches),
            latency_s=sum(b.latency_s for b in batches),
            cached=all(b.cached for b in batches),
            calls=sum(b.calls for b in batches),
            keys=[k for b in batches for k in b.keys],
        )


Accept = Callable[[Sequence[ParseResult], Sequence[bool], LoopState], Sequence[bool]]


class ExpertSelector:
    """Expert-region reject sampling in front of any selector; records the chosen origin.

    ``accept(results, expert, state)`` returns, per sample, whether an expert-conditioned
    sample is reliable (its value for on-policy samples is ignored); rejected ones are
    marked invalid (:data:`EXPERT_REJECTED`) before the inner selector runs. Without
    ``accept`` nothing is rejected and only the origin of the selection is recorded.
    """

    def __init__(self, inner: Selector, sampler: ExpertSampler, accept: Accept | None = None):
        """Wrap a selector.

        Args:
            inner: The selector.
            sampler: The expert sampler of the same loop.
            accept: The reliability check (``None``: keep every sample).
        """
        self.inner = inner
        self.sampler = sampler
        self.accept = accept

    def select(self, results: Sequence[ParseResult], state: LoopState) -> Selection:
        """Drop unreliable expert-conditioned samples, then select.

        Args:
            results: Parsed samples of the sampler's last call.
            state: The loop state.

        Returns:
            The inner selection; ``info`` adds ``expert`` (origin per sample),
            ``expert_rejected`` (indices dropped) and ``expert_chosen``.
        """
        expert = list(self.sampler.last_expert)
        if len(expert) != len(results):
            expert = [False] * len(results)
        rejected: list[int] = []
        if self.accept is not None and any(expert):
            keep = list(self.accept(results, expert, state))
            filtered = []
            for i, r in enumerate(results):
                if expert[i] and r.ok and not keep[i]:
                    rejected.append(i)
                    r = ParseResult(ok=False, error=EXPERT_REJECTED, raw=r.raw)
                filtered.append(r)
            results = filtered
        sel = self.inner.select(results, state)
        chosen = sel.index is not None and sel.index < len(expert) and expert[sel.index]
        self.sampler.chosen_expert = chosen
        info = {**sel.info, "expert": expert, "expert_rejected": rejected, "expert_chosen": chosen}
        return dataclasses.replace(sel, info=info)  # the inner choice is kept whole


def decay(iteration: int, horizon: int, schedule: Schedule = "linear") -> float:
    """ICPO's annealing factor, from 1 at iteration 0 down to 0.

    Args:
        iteration: The iteration (step).
        horizon: Iterations until the bonus is gone (linear, cosine) or its e-folding
            length (exp).
        schedule: ``linear`` (ICPO's default), ``exp`` or ``cosine``.

    Returns:
        The factor in [0, 1].

    Raises:
        ValueError: On a horizon < 1 or an unknown schedule.
    """
    if horizon < 1:
        raise ValueError(f"the anneal horizon must be >= 1, got {horizon}")
    t = max(iteration, 0)
    if schedule == "linear":
        return max(0.0, 1.0 - t / horizon)
    if schedule == "exp":
        return math.exp(-t / horizon)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t / horizon)) if t < horizon else 0.0
    raise ValueError(f"unknown anneal schedule {schedule!r}")


class AnnealedExpertBonus:
    """Annealed expert-bonus reward shaping around any reward provider.

    A successful action (inner reward ≥ ``success_reward``) selected from an
    expert-conditioned sample earns ``beta × decay(iteration)`` on top (ICPO: correct and
    hinted → 1 + β·decay). ``info`` keeps the unshaped reward.
    """

    def __init__(
        self,
        inner: RewardProvider,
        sampler: ExpertSampler,
        *,
        beta: float = 1.0,
        horizon: int = 10,
        schedule: Schedule = "linear",
        success_reward: float = 1.0,
    ) -> None:
        """Wrap a reward provider.

        Args:
            inner: The reward the method sees.
            sampler: The expert sampler of the same loop.
            beta: Bonus at iteration 0.
            horizon: Annealing horizon, iterations.
            schedule: ``linear``, ``exp`` or ``cosine``.
            success_reward: Inner reward from which an action counts as a success.
        """
        decay(0, horizon, schedule)  # validates the horizon and schedule
        self.inner = inner
        self.sampler = sampler
        self.beta = beta
        self.horizon = horizon
        self.schedule: Schedule = schedule
        self.success_reward = success_reward

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Evaluate, then add the bonus.

        Args:
            action: The action.
            state: The loop state.

        Returns:
            The shaped feedback; ``info`` holds ``unshaped_reward``, ``expert`` and
            ``expert_bonus``.
        """
        fb = self.inner(action, state)
        expert = self.sampler.chosen_expert
        bonus = 0.0
        if expert and fb.reward >= self.success_reward:
            bonus = self.beta * decay(state.iteration, self.horizon, self.schedule)
        info = {**fb.info, "unshaped_reward": fb.reward, "expert": expert, "expert_bonus": bonus}
        return Feedback(fb.reward + bonus, info)
