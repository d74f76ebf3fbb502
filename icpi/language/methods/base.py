"""What a language method is: a registered class with typed settings that builds a loop.

Every method — ICRL Preset and Autonomous, each baseline, ME-ICPO — is one class in one
module of this package, registered by :func:`~icpi.language.methods.register` under its
id, with its own settings dataclass (:attr:`LangMethod.Settings`); "X applies only to Y"
rules live in that dataclass (and in :meth:`LangMethodSettings.check` for rules that
depend on the task). A method builds the improvement loop of one problem
(:meth:`LangMethod.build`), one loop iteration per round, and may add a final step
(:meth:`LangMethod.finish`, ME-ICPO's final samples).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

from icpi.config import STRICT
from icpi.core import (
    ContextBuilder,
    ExperienceBuffer,
    FirstValid,
    ImprovementLoop,
    LoopPieces,
    LoopPolicy,
    Parser,
    ParseResult,
    PromptTemplate,
    RewardProvider,
    Sampler,
    Selector,
)
from icpi.core.expert import AnnealedExpertBonus, ExpertSampler, ExpertSelector, Schedule
from icpi.errors import ConfigError
from icpi.language.budget import (
    DEFAULT_CONTEXT_TOKENS,
    ContextOverflowError,
    OverflowGuard,
    TokenBudget,
)
from icpi.language.metering import RoundUsage, Samplers
from icpi.language.prompts import PACKAGE, PromptSet
from icpi.language.tasks.base import LanguageTask, Problem
from icpi.llm.errors import MODEL_ERRORS


@dataclass(frozen=True)
class LangMethodSettings:
    """Base class of every language method's settings (and of a method without any)."""

    __pydantic_config__ = STRICT

    def check(self, task: LanguageTask[Any]) -> None:
        """Refuse settings that do not fit the task (none by default).

        Args:
            task: The task.

        Raises:
            ConfigError: On a misfit.
        """


@dataclass(frozen=True)
class ExpertOptions(LangMethodSettings):
    """Seed 001, implicit expert forcing: a share of the samples drawn with a solved example."""

    expert_share: float = 0.0
    """Expected share of samples drawn with a solved example in context (0: off; ICPO uses
    1 of 8)."""
    expert_file: str | None = None
    """JSONL of solved examples (``question``, ``solution``); Game of 24 default: solver
    solutions of ranked puzzles outside the test split and the run."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.expert_share <= 1.0:
            raise ConfigError("expert_share must be in [0, 1]")
        if self.expert_file and not self.expert_share:
            raise ConfigError("an expert file needs expert_share > 0")


@dataclass(frozen=True)
class ExpertSettings:
    """Seed-001 steering of a loop (:mod:`icpi.core.expert`), resolved for a run."""

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


@dataclass
class LangContext:
    """What a method is built from: the same for every method of a comparison."""

    task: LanguageTask[Any]
    """The task."""
    samplers: Samplers
    """The samplers of each role (policy, judge, helper), metered."""
    budget: TokenBudget = field(default_factory=lambda: TokenBudget(DEFAULT_CONTEXT_TOKENS))
    """The prompt budget (default: :data:`DEFAULT_CONTEXT_TOKENS`)."""
    prompts: PromptSet = PACKAGE
    """The texts shown to the model."""
    chat: bool = False
    """Render chat messages (else plain completion prompts)."""
    demonstrations: Sequence[str] = ()
    """Solved examples for expert forcing (resolved by the runner when a setting asks)."""
    helper_chars: int | None = None
    """Longest response shown in a critique, reflection or summary prompt, characters
    (``None``: whole)."""


S = TypeVar("S", bound=LangMethodSettings)


class LangMethod(ABC, Generic[S]):
    """A language improvement method (see the module docstring)."""

    name: ClassVar[str]
    """Method id (``icrl-preset``, ``me-icpo``, ...): the key of the registry."""
    summary: ClassVar[str]
    """One line for the README's method table."""
    Settings: ClassVar[type[LangMethodSettings]] = LangMethodSettings
    """Its settings dataclass."""
    uses_reward: ClassVar[bool] = True
    """Whether the task's reward is shown to the model or decides anything; a method that
    uses none records the task's exact checks instead and asks no judge (where the task
    can decide success without one)."""
    single_pass: ClassVar[bool] = False
    """Whether it answers once, whatever the rounds (CoT-only, Long-CoT)."""
    needs_answers: ClassVar[bool] = False
    """Whether it needs a task with checkable final answers (ME-ICPO votes on them)."""

    def __init__(self, ctx: LangContext, settings: S | None = None) -> None:
        """Create the method for one run.

        Args:
            ctx: Task, samplers, budget, prompts.
            settings: An instance of :attr:`Settings`; ``None``: the defaults.

        Raises:
            TypeError: If the settings belong to another method.
            ConfigError: If the settings or the method do not fit the task.
        """
        given = settings if settings is not None else self.Settings()
        if not isinstance(given, self.Settings):
            raise TypeError(f"{self.name} takes {self.Settings.__name__}, got {settings!r}")
        self.settings: S = cast(S, given)
        self.ctx = ctx
        if self.needs_answers and not ctx.task.has_answers:
            raise ConfigError(
                f"{self.name} votes on final answers; the {ctx.task.name} task has none"
            )
        self.settings.check(ctx.task)

    @classmethod
    def rounds_run(cls, rounds: int) -> int:
        """Rounds actually run (single-pass methods answer once).

        Args:
            rounds: Rounds asked for.

        Returns:
            The rounds run.
        """
        return 1 if cls.single_pass else rounds

    def reward_seen(self) -> str:
        """Which reward the method sees, in one sentence (stated in ``config.json``)."""
        if not self.uses_reward:
            instead = self.ctx.task.reward_without_judge()
            if instead is not None:
                return instead
        return self.ctx.task.reward_seen

    def task_reward(self, problem: Problem) -> RewardProvider:
        """The task's reward of a problem, judged only when this method uses it."""
        judged = self.uses_reward or self.ctx.task.reward_without_judge() is None
        return self.ctx.task.reward(problem, self.ctx.samplers.judge, judged=judged)

    def expert(self) -> ExpertSettings | None:
        """The resolved expert steering of this method's settings (``None``: off)."""
        share = float(getattr(self.settings, "expert_share", 0.0))
        if share <= 0:
            return None
        return ExpertSettings(
            demonstrations=tuple(self.ctx.demonstrations),
            share=share,
            reject=bool(getattr(self.settings, "expert_reject", False)),
            bonus=float(getattr(self.settings, "expert_bonus", 0.0)),
            anneal_rounds=int(getattr(self.settings, "expert_anneal", 10)),
        )

    @abstractmethod
    def build(
        self, problem: Problem, *, buffer: ExperienceBuffer | None = None, seed: int = 0
    ) -> tuple[ImprovementLoop, RoundUsage]:
        """Assemble the loop of one problem (one iteration per round).

        Args:
            problem: The problem.
            buffer: Its experience buffer (resumed when it holds attempts).
            seed: Seed of the problem's calls.

        Returns:
            The loop and its reward wrapper (mark each round with ``start_round``).
        """

    def finish(self, loop: ImprovementLoop, problem: Problem, seed: int) -> dict[str, Any] | None:
        """A final step after the rounds (ME-ICPO's final samples); none by default.

        Args:
            loop: The finished loop.
            problem: The problem.
            seed: Seed of the problem's calls.

        Returns:
            JSON data stored as ``attempts/NNN.final.json``, or ``None``.
        """
        return None


def response_loop(
    method: LangMethod[Any],
    problem: Problem,
    *,
    context: ContextBuilder,
    prompt: PromptTemplate,
    reward: RewardProvider,
    parser: Parser,
    buffer: ExperienceBuffer | None,
    seed: int,
    task_text: str,
    bonus_success: float | None = None,
) -> tuple[ImprovementLoop, RoundUsage]:
    """The loop of a method that writes one response per round (ICRL and its baselines).

    A failed call (an empty answer, endpoint trouble past its retries, a prompt too long
    for the endpoint) is a failed attempt scored as an empty response; an endpoint down
    for good stops the run (resumable). Expert steering from the method's settings is
    applied here.

    Args:
        method: The method (its context, settings and expert steering).
        problem: The problem.
        context: The context builder.
        prompt: The prompt template.
        reward: The reward provider (the task's, possibly wrapped).
        parser: The response parser.
        buffer: The problem's experience buffer.
        seed: Seed of the problem's calls.
        task_text: The task text (``task_text`` of the prompt).
        bonus_success: Reward of a full-reward attempt, for the annealed expert bonus
            (``None``: no bonus).

    Returns:
        The loop and its usage-stamping reward wrapper.
    """
    ctx = method.ctx
    sampler: Sampler = OverflowGuard(ctx.samplers.policy)
    selector: Selector = FirstValid()
    expert = method.expert()
    if expert is not None and expert.active:
        steered = ExpertSampler(sampler, expert.demonstrations, expert.share)
        sampler, selector = steered, ExpertSelector(selector, steered)
        if expert.bonus > 0 and bonus_success is not None:
            reward = AnnealedExpertBonus(
                reward, steered, beta=expert.bonus, horizon=expert.anneal_rounds,
                schedule=expert.schedule, success_reward=bonus_success,
            )  # fmt: skip
    usage = RoundUsage(reward, ctx.samplers.meter)
    loop = ImprovementLoop(
        LoopPieces(
            context=context,
            prompt=prompt,
            sampler=sampler,
            parser=parser,
            selector=selector,
            reward=usage,
        ),
        LoopPolicy(
            n_samples=1,
            max_resamples=0,
            fallback=lambda state: "",  # an empty response: scored (0), never a crash
            model_errors=(*MODEL_ERRORS, ContextOverflowError),
        ),
        task={"task_text": task_text, "problem": problem.id, **problem.data},
        buffer=buffer,
        seed=seed,
    )
    return loop, usage


class ResponseParser:
    """Accept any non-empty response; the value is the whole stripped text, however long."""

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
        return ParseResult(ok=True, value=stripped, raw=text)
