"""Self-Refine: the model critiques each response; the critiques, not the rewards, are shown."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from icpi.core import (
    Attempt,
    ExperienceBuffer,
    Feedback,
    ImprovementLoop,
    LoopState,
    RewardProvider,
    Sampler,
)
from icpi.core.context import AttemptView
from icpi.language.budget import shorten
from icpi.language.metering import RoundUsage
from icpi.language.methods.attempts import Span, strip_reward_tags, tagged_response
from icpi.language.methods.base import (
    ExpertOptions,
    LangMethod,
    ResponseParser,
    response_loop,
)
from icpi.language.methods.best_of_n import task_prompt
from icpi.language.methods.icrl import FittedAttempts
from icpi.language.methods.registry import register
from icpi.language.tasks.base import Problem

CRITIQUE_PROMPT = """\
{task_text}

Response:
{response}

Review the response above. Point out its concrete mistakes and say how to fix them, in a \
few sentences. Do not write a new response.
Feedback:"""

REFINE_INSTRUCTION = (
    "Above are your earlier responses to this task, each with feedback on it. Write an "
    "improved response that fixes the problems the feedback points out."
)


class ModelCommentary:
    """Evaluate with the task's reward, then ask the model to comment on the response.

    Self-Refine's critique (after every attempt) and Reflexion's reflection (after an
    attempt below the task's full reward, as the method sees it) are both this reward
    wrapper: the task's reward is recorded, and the comment is stored under
    ``info[key]`` for the context builder to show.
    """

    def __init__(
        self,
        inner: RewardProvider,
        helper: Sampler,
        task_text: str,
        *,
        prompt: str,
        key: str,
        reflect_below: float | None,
        seed: int = 0,
        max_chars: int | None = None,
        span: Span | None = None,
    ) -> None:
        """Wrap the task's reward.

        Args:
            inner: The task's reward provider (the reward the method sees).
            helper: Sampler writing the comment.
            task_text: The task text.
            prompt: Template with ``{task_text}``, ``{response}`` and ``{max_reward}``.
            key: Info key of the comment (``feedback`` or ``reflection``).
            reflect_below: Comment only when the reward is below this (``None``: always).
            seed: Seed of the comment calls (offset by iteration).
            max_chars: Longest response shown to the helper (cut keeping its answer).
            span: Where the final answer stands in a response.
        """
        self.inner = inner
        self.helper = helper
        self.task_text = task_text
        self.prompt = prompt
        self.key = key
        self.reflect_below = reflect_below
        self.seed = seed
        self.max_chars = max_chars
        self.span = span

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Evaluate and add the comment (empty when none was asked for).

        Args:
            action: The response.
            state: The loop state.

        Returns:
            The inner feedback plus ``info[key]``.
        """
        fb = self.inner(action, state)
        comment = ""
        if self.reflect_below is None or fb.reward < self.reflect_below:
            shown = Attempt(state.iteration, action, fb.reward, dict(fb.info))
            if self.reflect_below is not None:
                response = tagged_response(shown, max_chars=self.max_chars, span=self.span)
            else:
                text = str(action or "")
                keep = self.span(text) if self.span else None
                response = shorten(text, self.max_chars, keep) if self.max_chars else text
            prompt = self.prompt.format(
                task_text=self.task_text, response=response, max_reward=self.reflect_below or 0.0
            )
            batch = self.helper.sample(prompt, 1, self.seed + state.iteration)
            comment = (batch.texts or [""])[0].strip()
        return Feedback(fb.reward, {**fb.info, self.key: comment})


def refine_view(max_chars: int, span: Span | None) -> AttemptView:
    """Self-Refine's view of an attempt: the response (cut) and the feedback on it.

    Args:
        max_chars: Longest response shown.
        span: Where the final answer stands in a response.

    Returns:
        The view.
    """

    def view(attempt: Attempt) -> Mapping[str, Any]:
        text = strip_reward_tags(str(attempt.action or "")).strip()
        body = shorten(text, max_chars, span(text) if span else None) or "(no response)"
        feedback = attempt.info.get("feedback", "")
        return {"block": f"<attempt>\nResponse:\n{body}\nFeedback: {feedback}\n</attempt>"}

    return view


@register
class SelfRefine(LangMethod[ExpertOptions]):
    """The model critiques every response; the critiques, not the rewards, are shown.

    The reward decides nothing, so no judge is asked (where the task can decide success
    without one).
    """

    name = "self-refine"
    summary = "Self-Refine: the model critiques each response; critiques shown, rewards not"
    Settings = ExpertOptions
    uses_reward = False

    def build(
        self, problem: Problem, *, buffer: ExperienceBuffer | None = None, seed: int = 0
    ) -> tuple[ImprovementLoop, RoundUsage]:
        """Assemble the loop of one problem (see :meth:`LangMethod.build`)."""
        ctx = self.ctx
        task_text = ctx.task.describe(problem)
        span: Callable[[str], tuple[int, int] | None] = ctx.task.answer_span

        def overhead(state: LoopState) -> str:
            return f"{REFINE_INSTRUCTION}\n\n{task_text}"

        context = FittedAttempts(
            ctx.budget, overhead, "none", span, render=lambda chars: refine_view(chars, span)
        )
        reward = ModelCommentary(
            self.task_reward(problem), ctx.samplers.helper, task_text, prompt=CRITIQUE_PROMPT,
            key="feedback", reflect_below=None, seed=seed, max_chars=ctx.helper_chars, span=span,
        )  # fmt: skip
        prompt = task_prompt(ctx.chat, REFINE_INSTRUCTION, from_round=1)
        return response_loop(
            self, problem, context=context, prompt=prompt, reward=reward,
            parser=ResponseParser(), buffer=buffer, seed=seed, task_text=task_text,
        )  # fmt: skip
