"""ICRL prompting (seed ``002_…``): earlier attempts with their rewards, an instruction, the task.

One response per round; the prompt holds the earlier attempts at the same problem, each
with its reward tags, then an ICRL instruction, then the task. *Preset* gives the
exploration instruction on even rounds (round 0 included) and the exploitation instruction
on odd rounds; *Autonomous* always gives the combined instruction and lets the model
choose. Ablations (:data:`ICRLAblation`): zero reward, no reward, short context (last 3
attempts), explore-only (without rewards), exploit-only and no instruction.

Every context is cut to the token budget: the newest attempts that fit are kept (math:
the best ones, each cut so that at least :data:`MATH_MIN_ATTEMPTS` fit; other tasks: each
cut so that at least :data:`MIN_SHOWN` fit). A cut attempt keeps its start and its final
answer. Reward tags a model writes itself are removed before its response is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from icpi.core import (
    AllAttempts,
    ExperienceBuffer,
    ImprovementLoop,
    LastN,
    LoopState,
    PromptTemplate,
    SortedByReward,
)
from icpi.core.context import AttemptView
from icpi.errors import ConfigError
from icpi.language.budget import Budgeted, TokenBudget
from icpi.language.metering import RoundUsage
from icpi.language.methods.attempts import RewardDisplay, Span, attempt_view
from icpi.language.methods.base import (
    ExpertOptions,
    LangMethod,
    ResponseParser,
    response_loop,
)
from icpi.language.methods.registry import register
from icpi.language.prompts import PromptSet
from icpi.language.tasks.base import Problem

ICRLAblation = Literal[
    "zero-reward", "no-reward", "short-context", "explore-only", "exploit-only", "no-instruction"
]
#: Attempts kept by the short-context ablation (the paper's deque of length 3).
SHORT_CONTEXT = 3
#: Attempts kept for creative writing (the paper's window).
WRITING_WINDOW = 25
#: Attempts that always fit the budget (each is cut so that this many fit).
MIN_SHOWN = 4
#: Math: each attempt cut to at most this many tokens, and short enough that at least
#: :data:`MATH_MIN_ATTEMPTS` attempts fit the budget (the paper: "at least 32").
MATH_ATTEMPT_TOKENS = 512
MATH_MIN_ATTEMPTS = 32


@dataclass(frozen=True)
class ICRLSettings(ExpertOptions):
    """Settings of ICRL prompting."""

    ablation: ICRLAblation | None = None
    """ICRL ablation: ``zero-reward``, ``no-reward``, ``short-context``, ``explore-only``,
    ``exploit-only`` or ``no-instruction``."""
    expert_bonus: float = 0.0
    """Seed 001, annealed expert bonus: extra reward of a full-reward attempt drawn with a
    demonstration, decaying linearly to 0 over ``expert_anneal`` rounds (0: off)."""
    expert_anneal: int = 10
    """Rounds over which the expert bonus decays."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.expert_bonus and not self.expert_share:
            raise ConfigError("the expert bonus needs expert_share > 0")
        if self.expert_anneal < 1:
            raise ConfigError("expert_anneal must be >= 1")


def instruction_for(
    preset: bool, ablation: str | None, prompts: PromptSet
) -> Callable[[LoopState], str] | None:
    """Return the per-round ICRL instruction.

    Args:
        preset: ICRL Preset (alternate) rather than Autonomous (the model chooses).
        ablation: One of :data:`ICRLAblation` or ``None``.
        prompts: The instruction texts.

    Returns:
        A function of the state giving the instruction (``None``: no instruction).
    """
    if ablation == "no-instruction":
        return None
    if ablation == "explore-only":
        return lambda state: prompts.explore
    if ablation == "exploit-only":
        return lambda state: prompts.exploit
    if preset:
        return lambda state: prompts.explore if state.iteration % 2 == 0 else prompts.exploit
    return lambda state: prompts.choose


class FittedAttempts:
    """Earlier attempts, each cut so that at least ``min_shown`` fit the budget.

    The attempts come in time order (all, or the last ``last``) or sorted by reward (best
    last); each response is cut to ``min(max_tokens, room / min_shown)`` tokens, keeping its
    start and its final answer; then the newest (or best) that fit are kept.
    """

    def __init__(
        self,
        budget: TokenBudget,
        overhead: Callable[[LoopState], str],
        display: RewardDisplay,
        span: Span | None = None,
        *,
        by_reward: bool = False,
        last: int | None = None,
        min_shown: int = MIN_SHOWN,
        max_tokens: int | None = None,
        render: Callable[[int], AttemptView] | None = None,
    ) -> None:
        """Create the builder.

        Args:
            budget: The prompt budget.
            overhead: The rest of the prompt of a state (task text, instruction).
            display: How rewards are shown.
            span: Where the final answer stands in a response.
            by_reward: Sort by reward, best last (else time order).
            last: Keep only the last this many attempts (``None``: all).
            min_shown: Attempts that always fit.
            max_tokens: Longest attempt, tokens (``None``: only the budget bounds it).
            render: The view of an attempt cut to a number of characters (default:
                :func:`~icpi.language.methods.attempts.attempt_view` with ``display``).
        """
        self.budget = budget
        self.overhead = overhead
        self.display: RewardDisplay = display
        self.span = span
        self.by_reward = by_reward
        self.last = last
        self.min_shown = min_shown
        self.max_tokens = max_tokens
        self.render = render

    def build(self, state: LoopState) -> list[Mapping[str, Any]]:
        """Return the attempts that fit, each cut, in prompt order.

        Args:
            state: The loop state.

        Returns:
            ``{"block", "reward"}`` examples.
        """
        ratio = self.budget.ratio(state.history)
        room = self.budget.limit(state.history) - self.budget.count(self.overhead(state), ratio)
        tokens = max(room, 0) // self.min_shown - 16
        if self.max_tokens is not None:
            tokens = min(tokens, self.max_tokens)
        chars = max(int(tokens / ratio), 40)
        view = self.render(chars) if self.render else attempt_view(self.display, chars, self.span)
        if self.by_reward:
            examples = SortedByReward(view=view, best_last=True).build(state)
        elif self.last is not None:
            examples = LastN(self.last, view=view).build(state)
        else:
            examples = AllAttempts(view=view).build(state)
        return Budgeted(LastN(0), self.budget, self.overhead).fit(examples, state)


def icrl_prompt(instruction: Callable[[LoopState], str] | None, chat: bool) -> PromptTemplate:
    """Return ICRL's prompt: attempts, then the instruction, then the task.

    Args:
        instruction: Per-round instruction (``None``: none).
        chat: Render chat messages.

    Returns:
        The template (the task text comes from the state's ``task_text``).
    """

    def query(q: Mapping[str, Any]) -> str:
        parts = [q["instruction"], q["task_text"]] if q["instruction"] else [q["task_text"]]
        return "\n\n".join(parts)

    return PromptTemplate(
        example=lambda ex: str(ex["block"]), query=query, separator="\n\n", chat=chat,
        instruction=instruction,
    )  # fmt: skip


class ICRL(LangMethod[ICRLSettings]):
    """ICRL prompting (Preset or Autonomous; see the module docstring)."""

    Settings = ICRLSettings
    preset = True

    def build(
        self, problem: Problem, *, buffer: ExperienceBuffer | None = None, seed: int = 0
    ) -> tuple[ImprovementLoop, RoundUsage]:
        """Assemble the loop of one problem (see :meth:`LangMethod.build`)."""
        ctx, ablation = self.ctx, self.settings.ablation
        task_text = ctx.task.describe(problem)
        instruction = instruction_for(self.preset, ablation, ctx.prompts)

        def overhead(state: LoopState) -> str:
            return f"{instruction(state) if instruction else ''}\n\n{task_text}"

        display: RewardDisplay = "real"
        if ablation == "zero-reward":
            display = "zero"
        elif ablation in ("no-reward", "explore-only"):
            display = "none"
        span = ctx.task.answer_span
        context: FittedAttempts
        if ablation == "short-context":
            context = FittedAttempts(
                ctx.budget, overhead, display, span, last=SHORT_CONTEXT, min_shown=SHORT_CONTEXT
            )
        elif ctx.task.name == "math":
            context = FittedAttempts(
                ctx.budget, overhead, display, span, by_reward=True,
                min_shown=MATH_MIN_ATTEMPTS, max_tokens=MATH_ATTEMPT_TOKENS,
            )  # fmt: skip
        elif ctx.task.name == "writing":
            context = FittedAttempts(ctx.budget, overhead, display, span, last=WRITING_WINDOW)
        else:
            context = FittedAttempts(ctx.budget, overhead, display, span)
        return response_loop(
            self, problem, context=context, prompt=icrl_prompt(instruction, ctx.chat),
            reward=self.task_reward(problem), parser=ResponseParser(), buffer=buffer,
            seed=seed, task_text=task_text, bonus_success=ctx.task.max_reward,
        )  # fmt: skip


@register
class ICRLPreset(ICRL):
    """ICRL Preset: exploration on even rounds, exploitation on odd ones."""

    name = "icrl-preset"
    summary = "ICRL prompting, Preset: explore on even rounds, exploit on odd ones"
    preset = True


@register
class ICRLAutonomous(ICRL):
    """ICRL Autonomous: the combined instruction every round, the model chooses."""

    name = "icrl-autonomous"
    summary = "ICRL prompting, Autonomous: the model chooses to explore or exploit"
    preset = False
