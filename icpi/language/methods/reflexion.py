"""Reflexion: after an attempt below the full reward, the model reflects; reflections are shown.

The reward that triggers a reflection is the one the method sees (never the hidden
success); the context holds every reflection so far, then the last attempt with its
rewards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icpi.core import ExperienceBuffer, ImprovementLoop, LoopState
from icpi.language.budget import Budgeted
from icpi.language.metering import RoundUsage
from icpi.language.methods.attempts import Span, tagged_response
from icpi.language.methods.base import ExpertOptions, LangMethod, ResponseParser, response_loop
from icpi.language.methods.best_of_n import task_prompt
from icpi.language.methods.registry import register
from icpi.language.methods.self_refine import ModelCommentary
from icpi.language.tasks.base import Problem

REFLECT_PROMPT = """\
{task_text}

Your attempt, with the rewards it earned (at most {max_reward:g} in total):
{response}

This attempt did not earn the full reward. In two or three sentences, explain what went \
wrong and what you will do differently next time.
Reflection:"""

REFLEXION_INSTRUCTION = (
    "Above are your reflections on earlier attempts and your last attempt with its "
    "rewards. Use them to write a better response."
)


class ReflexionMemory:
    """Reflexion's context: every reflection so far, then the last attempt with its rewards."""

    def __init__(self, max_chars: int | None = None, span: Span | None = None) -> None:
        """Create the builder.

        Args:
            max_chars: Longest last attempt shown (cut keeping its answer).
            span: Where the final answer stands in a response.
        """
        self.max_chars = max_chars
        self.span = span

    def build(self, state: LoopState) -> list[Mapping[str, Any]]:
        """Return the reflections and the last attempt as blocks.

        Args:
            state: The loop state.

        Returns:
            One block per reflection, then one for the last attempt (reward tags shown,
            never the hidden success).
        """
        out: list[Mapping[str, Any]] = [
            {"block": f"Reflection after attempt {a.iteration + 1}: {a.info['reflection']}"}
            for a in state.history
            if a.info.get("reflection")
        ]
        if state.history:
            last = tagged_response(state.history[-1], max_chars=self.max_chars, span=self.span)
            out.append({"block": f"Last attempt:\n{last}"})
        return out


@register
class Reflexion(LangMethod[ExpertOptions]):
    """Reflections after attempts below the full reward, and the last attempt, are shown."""

    name = "reflexion"
    summary = "Reflexion: a reflection after each attempt below the full reward (as seen)"
    Settings = ExpertOptions

    def build(
        self, problem: Problem, *, buffer: ExperienceBuffer | None = None, seed: int = 0
    ) -> tuple[ImprovementLoop, RoundUsage]:
        """Assemble the loop of one problem (see :meth:`LangMethod.build`)."""
        ctx = self.ctx
        task_text = ctx.task.describe(problem)
        span = ctx.task.answer_span

        def overhead(state: LoopState) -> str:
            return f"{REFLEXION_INSTRUCTION}\n\n{task_text}"

        last_chars = ctx.helper_chars
        context = Budgeted(ReflexionMemory(last_chars, span), ctx.budget, overhead)
        reward = ModelCommentary(
            self.task_reward(problem), ctx.samplers.helper, task_text, prompt=REFLECT_PROMPT,
            key="reflection", reflect_below=ctx.task.max_reward, seed=seed,
            max_chars=ctx.helper_chars, span=span,
        )  # fmt: skip
        return response_loop(
            self, problem, context=context,
            prompt=task_prompt(ctx.chat, REFLEXION_INSTRUCTION, from_round=1), reward=reward,
            parser=ResponseParser(), buffer=buffer, seed=seed, task_text=task_text,
        )  # fmt: skip
