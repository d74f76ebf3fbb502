"""CoT-only and Long-CoT: one answer to the task text, no reward (single-pass baselines)."""

from __future__ import annotations

import re
from typing import Any

from icpi.core import (
    ExperienceBuffer,
    Feedback,
    ImprovementLoop,
    LastN,
    LoopState,
    RewardProvider,
)
from icpi.language.metering import RoundUsage
from icpi.language.methods.base import (
    LangMethod,
    LangMethodSettings,
    ResponseParser,
    response_loop,
)
from icpi.language.methods.best_of_n import BestOfN, task_prompt
from icpi.language.methods.registry import register
from icpi.language.tasks.base import Problem

LONG_COT = (
    "Think it through at length first, between <think> and </think>: try an approach, "
    "check it, and if it is wrong keep trying other approaches inside the tags. After "
    "</think>, give one final response in the required format."
)


class AfterThinking:
    """Score only what follows the last ``</think>`` (Long-CoT's final response)."""

    def __init__(self, inner: RewardProvider) -> None:
        """Wrap the task's reward.

        Args:
            inner: The task's reward provider.
        """
        self.inner = inner

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Evaluate the final response (the whole text after the thoughts, any length).

        Args:
            action: The whole response.
            state: The loop state.

        Returns:
            The inner feedback of the text after the thoughts.
        """
        text = str(action or "")
        _, sep, tail = text.rpartition("</think>")
        return self.inner(tail if sep else re.sub(r"<think>.*", "", text, flags=re.DOTALL), state)


@register
class CoTOnly(BestOfN):
    """One step-by-step answer to the task text (Best-of-N's loop, one round)."""

    name = "cot-only"
    summary = "CoT-only: one step-by-step answer (single pass, uses no reward)"
    single_pass = True


@register
class LongCoT(LangMethod[LangMethodSettings]):
    """One answer after a long chain of thought in ``<think>`` tags that keeps retrying."""

    name = "long-cot"
    summary = "Long-CoT: one answer after a long <think> that keeps retrying (single pass)"
    uses_reward = False
    single_pass = True

    def build(
        self, problem: Problem, *, buffer: ExperienceBuffer | None = None, seed: int = 0
    ) -> tuple[ImprovementLoop, RoundUsage]:
        """Assemble the loop of one problem (see :meth:`LangMethod.build`)."""
        return response_loop(
            self, problem, context=LastN(0), prompt=task_prompt(self.ctx.chat, LONG_COT),
            reward=AfterThinking(self.task_reward(problem)), parser=ResponseParser(),
            buffer=buffer, seed=seed, task_text=self.ctx.task.describe(problem),
        )  # fmt: skip
