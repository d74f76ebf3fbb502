"""Best-of-N: independent samples of the task text, no context; the best round counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icpi.core import ExperienceBuffer, ImprovementLoop, LastN, PromptTemplate
from icpi.language.metering import RoundUsage
from icpi.language.methods.base import (
    LangMethod,
    LangMethodSettings,
    ResponseParser,
    response_loop,
)
from icpi.language.methods.registry import register
from icpi.language.tasks.base import Problem


def task_prompt(chat: bool, before: str | None = None, from_round: int = 0) -> PromptTemplate:
    """A prompt of the context, then the task text (after ``before`` from a round on).

    Args:
        chat: Render chat messages.
        before: Text put before the task text (``None``: none).
        from_round: First round that shows ``before`` (Self-Refine and Reflexion: 1).

    Returns:
        The template.
    """

    def query(q: Mapping[str, Any]) -> str:
        if before and q["iteration"] >= from_round:
            return f"{before}\n\n{q['task_text']}"
        return str(q["task_text"])

    return PromptTemplate(
        example=lambda ex: str(ex["block"]), query=query, separator="\n\n", chat=chat
    )


@register
class BestOfN(LangMethod[LangMethodSettings]):
    """Independent samples, no context: success when any round succeeds.

    The reward is never shown and decides nothing, so no judge is asked: the records hold
    the task's exact checks (where the task can decide success without a judge).
    """

    name = "best-of-n"
    summary = "Best-of-N: independent samples, no context (uses no reward, asks no judge)"
    uses_reward = False

    def build(
        self, problem: Problem, *, buffer: ExperienceBuffer | None = None, seed: int = 0
    ) -> tuple[ImprovementLoop, RoundUsage]:
        """Assemble the loop of one problem (see :meth:`LangMethod.build`)."""
        return response_loop(
            self, problem, context=LastN(0), prompt=task_prompt(self.ctx.chat),
            reward=self.task_reward(problem), parser=ResponseParser(), buffer=buffer,
            seed=seed, task_text=self.ctx.task.describe(problem),
        )  # fmt: skip
