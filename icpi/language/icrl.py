"""ICRL prompting and its baselines as configurations of the shared core.

ICRL prompting (seed ``002_…``): one response per round; the prompt holds the earlier
attempts at the same problem, each with its reward tags, then an ICRL instruction, then
the task. *Preset* gives the exploration instruction on even rounds (round 0 included)
and the exploitation instruction on odd rounds; *Autonomous* always gives the combined
instruction and lets the model choose. Ablations are switches
(:data:`ICRL_ABLATIONS`): zero reward, no reward, short context (last 3 attempts),
explore-only (without rewards), exploit-only and no instruction.

Baselines on the same pieces: Best-of-N (independent samples, no context), Self-Refine
(the model critiques each response; the critiques, not the rewards, are shown),
Reflexion (after an attempt below the task's full reward — the reward the method sees,
never the hidden success — the model writes a reflection; the reflections and the last
attempt with its rewards are shown), CoT-only (one step-by-step answer to the task text)
and Long-CoT (one answer after a long chain of thought in ``<think>`` tags that keeps
retrying).

Every context is cut to a token budget (:class:`~icpi.language.common.Budgeted`): the
newest attempts that fit are kept (math: the best ones, each cut so that at least
:data:`MATH_MIN_ATTEMPTS` fit). Reward tags a model writes itself are removed before its
response is shown, so the only rewards in a prompt are the real ones.

Pieces: a context builder + a :class:`~icpi.core.prompts.PromptTemplate` with a per-round
instruction + :class:`~icpi.language.common.ResponseParser` +
:class:`~icpi.core.selectors.FirstValid` + the task's reward provider (wrapped by
:func:`self_critique` or :func:`reflection` for the baselines), optionally steered by an
expert (:mod:`icpi.core.expert`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from icpi.core import (
    AllAttempts,
    Attempt,
    ContextBuilder,
    ExperienceBuffer,
    Feedback,
    FirstValid,
    ImprovementLoop,
    LastN,
    LoopPieces,
    LoopPolicy,
    LoopState,
    PromptTemplate,
    RewardProvider,
    Sampler,
    Selector,
    SortedByReward,
)
from icpi.core.expert import AnnealedExpertBonus, ExpertSampler, ExpertSelector
from icpi.language.common import (
    DEFAULT_CONTEXT_TOKENS,
    Budgeted,
    ContextOverflowError,
    ExpertSettings,
    OverflowGuard,
    ResponseParser,
    RoundUsage,
    Samplers,
    TokenBudget,
)
from icpi.language.tasks import LanguageTask, Problem, reward_tag
from icpi.llm.errors import MODEL_ERRORS

log = logging.getLogger(__name__)

ICRL_METHODS = ("icrl-preset", "icrl-autonomous")
BASELINES = ("best-of-n", "self-refine", "reflexion", "cot-only", "long-cot")
#: Baselines that answer once and use no reward (the paper runs them for one pass).
SINGLE_PASS = ("cot-only", "long-cot")
ICRL_ABLATIONS = (
    "zero-reward",
    "no-reward",
    "short-context",
    "explore-only",
    "exploit-only",
    "no-instruction",
)
#: Attempts kept by the short-context ablation.
SHORT_CONTEXT = 3
#: Attempts kept for creative writing (the paper's window).
WRITING_WINDOW = 25
#: Math: each attempt cut to at most this many tokens, and short enough that at least
#: :data:`MATH_MIN_ATTEMPTS` attempts fit the budget (the paper: "at least 32").
MATH_ATTEMPT_TOKENS = 512
MATH_MIN_ATTEMPTS = 32

RewardDisplay = Literal["real", "zero", "none"]

EXPLORE = (
    "Instruction: Read every <attempt>...</attempt> above; each holds an earlier response to "
    "this task and the rewards it earned. Write a new response in which every step differs "
    "from the steps of all earlier attempts, while still following the task exactly."
)
EXPLOIT = (
    "Instruction: Read every <attempt>...</attempt> above; each holds an earlier response to "
    "this task and the rewards it earned. Learn from them and write the response you expect "
    "to earn a higher reward than any of them."
)
CHOOSE = (
    "Instruction: Read every <attempt>...</attempt> above; each holds an earlier response to "
    "this task and the rewards it earned. You may explore or exploit.\n"
    "Explore: write a response in which every step differs from the steps of all earlier "
    "attempts, while still following the task exactly.\n"
    "Exploit: learn from the earlier attempts and write the response you expect to earn a "
    "higher reward.\n"
    "Choose one of the two and follow it."
)
LONG_COT = (
    "Think it through at length first, between <think> and </think>: try an approach, "
    "check it, and if it is wrong keep trying other approaches inside the tags. After "
    "</think>, give one final response in the required format."
)


def instruction_for(method: str, ablation: str | None = None) -> Callable[[LoopState], str] | None:
    """Return the per-round ICRL instruction of a method and ablation.

    Args:
        method: ``icrl-preset`` or ``icrl-autonomous``.
        ablation: One of :data:`ICRL_ABLATIONS` or ``None``.

    Returns:
        A function of the state giving the instruction (``None``: no instruction).

    Raises:
        ValueError: On an unknown method.
    """
    if ablation == "no-instruction":
        return None
    if ablation == "explore-only":
        return lambda state: EXPLORE
    if ablation == "exploit-only":
        return lambda state: EXPLOIT
    if method == "icrl-preset":
        return lambda state: EXPLORE if state.iteration % 2 == 0 else EXPLOIT
    if method == "icrl-autonomous":
        return lambda state: CHOOSE
    raise ValueError(f"unknown ICRL method {method!r}")


_MODEL_TAGS = (
    re.compile(r"<\s*/?\s*(?:reward|return)\b[^>\n]*>", re.IGNORECASE),
    re.compile(r"\*{0,2}\b(?:total\s+)?(?:reward|return)\b\*{0,2}\s*[:=].*", re.IGNORECASE),
    re.compile(r"\(\s*reward\s*[:=][^)\n]*\)", re.IGNORECASE),
)


def strip_reward_tags(text: str) -> str:
    """Remove reward text a model wrote itself (``<Reward: …>``, ``Total reward: …``).

    Lines are kept (emptied at worst), so per-line rewards still land on their lines.

    Args:
        text: A model's response.

    Returns:
        The text without reward tags.
    """
    for pattern in _MODEL_TAGS:
        text = pattern.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n"))


def tagged_response(
    attempt: Attempt, display: RewardDisplay = "real", max_chars: int | None = None
) -> str:
    """Write an attempt's response with its reward tags.

    Per-line rewards (``info["line_rewards"]``, Game of 24 steps and answer) are tagged at
    the end of their lines and the total follows; other tasks get one tag after the text.
    Reward text the model wrote itself is removed first (:func:`strip_reward_tags`).

    Args:
        attempt: The attempt.
        display: ``real`` rewards, ``zero`` (all shown as 0) or ``none`` (no tags).
        max_chars: Cut the response to this many characters first.

    Returns:
        The tagged text.
    """
    text = strip_reward_tags(str(attempt.action or "")).rstrip()
    text = text if text.strip() else "(no response)"
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars] + " …"
    if display == "none":
        return text.strip()

    def shown(x: float) -> float:
        return 0.0 if display == "zero" or x != x else float(x)

    lines = text.splitlines()
    per_line = {int(i): float(r) for i, r in attempt.info.get("line_rewards", [])}
    if per_line:
        lines = [
            f"{ln} {reward_tag(shown(per_line[i]))}" if i in per_line else ln
            for i, ln in enumerate(lines)
        ]
        body = "\n".join(lines).strip("\n")
        return f"{body}\nTotal reward: {reward_tag(shown(attempt.reward))}"
    return "\n".join([*lines, reward_tag(shown(attempt.reward))]).strip("\n")


def attempt_view(
    display: RewardDisplay = "real", max_chars: int | None = None
) -> Callable[[Attempt], Mapping[str, Any]]:
    """Return a view rendering an attempt as an ``<attempt>`` block.

    Args:
        display: How rewards are shown (see :func:`tagged_response`).
        max_chars: Cut each response to this many characters.

    Returns:
        A view giving ``{"block": text, "reward": ...}``.
    """

    def view(attempt: Attempt) -> Mapping[str, Any]:
        body = tagged_response(attempt, display, max_chars)
        return {"block": f"<attempt>\nResponse:\n{body}\n</attempt>", "reward": attempt.reward}

    return view


def _block(ex: Mapping[str, Any]) -> str:
    return str(ex["block"])


class MathAttempts:
    """Math: attempts sorted by reward (best last), each cut so that enough of them fit.

    Each response is cut to ``min(MATH_ATTEMPT_TOKENS, budget / MATH_MIN_ATTEMPTS)``
    tokens, so at least :data:`MATH_MIN_ATTEMPTS` attempts fit the budget; the best ones
    are kept when more than fit.
    """

    def __init__(
        self, budget: TokenBudget, overhead: Callable[[LoopState], str], display: RewardDisplay
    ) -> None:
        """Create the builder.

        Args:
            budget: The prompt budget.
            overhead: The rest of the prompt of a state (task text, instruction).
            display: How rewards are shown.
        """
        self.budget = budget
        self.overhead = overhead
        self.display: RewardDisplay = display

    def build(self, state: LoopState) -> list[Mapping[str, Any]]:
        """Return the best attempts that fit, each cut, best last.

        Args:
            state: The loop state.

        Returns:
            ``{"block", "reward"}`` examples.
        """
        ratio = self.budget.ratio(state.history)
        room = self.budget.limit(state.history) - self.budget.count(self.overhead(state), ratio)
        tokens = min(MATH_ATTEMPT_TOKENS, max(room, 0) // MATH_MIN_ATTEMPTS - 16)
        view = attempt_view(self.display, max(int(tokens / ratio), 40))
        ranked = SortedByReward(view=view, best_last=True).build(state)
        return Budgeted(LastN(0), self.budget, self.overhead).fit(ranked, state)


def icrl_context(
    task: LanguageTask,
    ablation: str | None,
    budget: TokenBudget | None = None,
    overhead: Callable[[LoopState], str] = lambda state: "",
) -> ContextBuilder:
    """Return the attempt buffer view of ICRL on a task, cut to a token budget.

    Args:
        task: The task (Game of 24: all attempts; writing: last 25; math: the best ones,
            each cut so that at least 32 fit).
        ablation: ``short-context`` keeps the last 3 attempts; reward ablations change the
            tags.
        budget: The prompt budget (default :data:`DEFAULT_CONTEXT_TOKENS`).
        overhead: The rest of the prompt of a state (counted against the budget).

    Returns:
        The context builder.
    """
    budget = budget or TokenBudget(DEFAULT_CONTEXT_TOKENS)
    display: RewardDisplay = "real"
    if ablation == "zero-reward":
        display = "zero"
    elif ablation in ("no-reward", "explore-only"):
        display = "none"
    inner: ContextBuilder
    if ablation == "short-context":
        inner = LastN(SHORT_CONTEXT, view=attempt_view(display))
    elif task.name == "writing":
        inner = LastN(WRITING_WINDOW, view=attempt_view(display))
    elif task.name == "math":
        return MathAttempts(budget, overhead, display)
    else:
        inner = AllAttempts(view=attempt_view(display))
    return Budgeted(inner, budget, overhead)


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
        example=_block, query=query, separator="\n\n", chat=chat, instruction=instruction
    )


# --------------------------------------------------------------------------- baselines
CRITIQUE_PROMPT = """\
{task_text}

Response:
{response}

Review the response above. Point out its concrete mistakes and say how to fix them, in a \
few sentences. Do not write a new response.
Feedback:"""

REFLECT_PROMPT = """\
{task_text}

Your attempt, with the rewards it earned (at most {max_reward:g} in total):
{response}

This attempt did not earn the full reward. In two or three sentences, explain what went \
wrong and what you will do differently next time.
Reflection:"""

REFINE_INSTRUCTION = (
    "Above are your earlier responses to this task, each with feedback on it. Write an "
    "improved response that fixes the problems the feedback points out."
)
REFLEXION_INSTRUCTION = (
    "Above are your reflections on earlier attempts and your last attempt with its "
    "rewards. Use them to write a better response."
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
        """
        self.inner = inner
        self.helper = helper
        self.task_text = task_text
        self.prompt = prompt
        self.key = key
        self.reflect_below = reflect_below
        self.seed = seed

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
            prompt = self.prompt.format(
                task_text=self.task_text,
                response=(
                    tagged_response(shown) if self.reflect_below is not None else str(action or "")
                ),
                max_reward=self.reflect_below or 0.0,
            )
            batch = self.helper.sample(prompt, 1, self.seed + state.iteration)
            comment = (batch.texts or [""])[0].strip()
        return Feedback(fb.reward, {**fb.info, self.key: comment})


def self_critique(
    inner: RewardProvider, helper: Sampler, task_text: str, seed: int = 0
) -> ModelCommentary:
    """Self-Refine's reward: a critique of every response (stored as ``feedback``)."""
    return ModelCommentary(
        inner, helper, task_text, prompt=CRITIQUE_PROMPT, key="feedback",
        reflect_below=None, seed=seed,
    )  # fmt: skip


def reflection(
    inner: RewardProvider, helper: Sampler, task_text: str, max_reward: float, seed: int = 0
) -> ModelCommentary:
    """Reflexion's reward: a reflection after each attempt below ``max_reward``."""
    return ModelCommentary(
        inner, helper, task_text, prompt=REFLECT_PROMPT, key="reflection",
        reflect_below=max_reward, seed=seed,
    )  # fmt: skip


def _refine_view(attempt: Attempt) -> Mapping[str, Any]:
    body = strip_reward_tags(str(attempt.action or "")).strip() or "(no response)"
    feedback = attempt.info.get("feedback", "")
    return {"block": f"<attempt>\nResponse:\n{body}\nFeedback: {feedback}\n</attempt>"}


class ReflexionMemory:
    """Reflexion's context: every reflection so far, then the last attempt with its rewards."""

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
            out.append({"block": f"Last attempt:\n{tagged_response(state.history[-1])}"})
        return out


class AfterThinking:
    """Score only what follows the last ``</think>`` (Long-CoT's final response)."""

    def __init__(self, inner: RewardProvider) -> None:
        """Wrap the task's reward.

        Args:
            inner: The task's reward provider.
        """
        self.inner = inner

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Evaluate the final response.

        Args:
            action: The whole response.
            state: The loop state.

        Returns:
            The inner feedback of the text after the thoughts.
        """
        text = str(action or "")
        _, sep, tail = text.rpartition("</think>")
        return self.inner(tail if sep else re.sub(r"<think>.*", "", text, flags=re.DOTALL), state)


def _baseline_prompt(follow_up: str | None, chat: bool, always: bool = False) -> PromptTemplate:
    def query(q: Mapping[str, Any]) -> str:
        if follow_up and (always or q["iteration"] > 0):
            return f"{follow_up}\n\n{q['task_text']}"
        return str(q["task_text"])

    return PromptTemplate(example=_block, query=query, separator="\n\n", chat=chat)


def build_icrl_loop(
    method: str,
    task: LanguageTask,
    problem: Problem,
    samplers: Samplers,
    *,
    ablation: str | None = None,
    buffer: ExperienceBuffer | None = None,
    seed: int = 0,
    chat: bool = False,
    budget: TokenBudget | None = None,
    expert: ExpertSettings | None = None,
) -> tuple[ImprovementLoop, RoundUsage]:
    """Assemble ICRL prompting or one of its baselines on one problem.

    Args:
        method: ``icrl-preset``, ``icrl-autonomous``, ``best-of-n``, ``self-refine``,
            ``reflexion``, ``cot-only`` or ``long-cot``.
        task: The task.
        problem: The problem.
        samplers: The run's samplers (policy, judge, helper).
        ablation: An ICRL ablation (:data:`ICRL_ABLATIONS`), ICRL methods only.
        buffer: The problem's experience buffer (resumed if it holds attempts).
        seed: Seed of the problem's calls.
        chat: Render chat messages rather than plain text.
        budget: Prompt token budget (default :data:`DEFAULT_CONTEXT_TOKENS`).
        expert: Expert demonstrations in context and the annealed expert bonus.

    Returns:
        The loop (one attempt per round) and its reward wrapper, whose
        :meth:`~icpi.language.common.RoundUsage.start_round` marks each round's start.

    Raises:
        ValueError: On an unknown method or ablation, or an ablation of a baseline.
    """
    if ablation is not None and ablation not in ICRL_ABLATIONS:
        raise ValueError(f"unknown ICRL ablation {ablation!r} (choose from {ICRL_ABLATIONS})")
    if ablation is not None and method not in ICRL_METHODS:
        raise ValueError(f"ablations apply to ICRL methods, not {method!r}")
    budget = budget or TokenBudget(DEFAULT_CONTEXT_TOKENS)
    task_text = task.describe(problem)
    base = task.reward(problem, samplers.judge)
    context: ContextBuilder
    reward: RewardProvider = base
    instruction = instruction_for(method, ablation) if method in ICRL_METHODS else None

    def overhead(state: LoopState) -> str:
        follow = instruction(state) if instruction else max(
            REFINE_INSTRUCTION, REFLEXION_INSTRUCTION, key=len
        )  # fmt: skip
        return f"{follow}\n\n{task_text}"

    if method in ICRL_METHODS:
        context = icrl_context(task, ablation, budget, overhead)
        prompt = icrl_prompt(instruction, chat)
    elif method in ("best-of-n", "cot-only"):
        context = LastN(0)
        prompt = _baseline_prompt(None, chat)
    elif method == "long-cot":
        context = LastN(0)
        prompt = _baseline_prompt(LONG_COT, chat, always=True)
        reward = AfterThinking(base)
    elif method == "self-refine":
        context = Budgeted(AllAttempts(view=_refine_view), budget, overhead)
        prompt = _baseline_prompt(REFINE_INSTRUCTION, chat)
        reward = self_critique(base, samplers.helper, task_text, seed)
    elif method == "reflexion":
        context = Budgeted(ReflexionMemory(), budget, overhead)
        prompt = _baseline_prompt(REFLEXION_INSTRUCTION, chat)
        reward = reflection(base, samplers.helper, task_text, task.max_reward, seed)
    else:
        raise ValueError(f"unknown method {method!r}")
    sampler: Sampler = OverflowGuard(samplers.policy)
    selector: Selector = FirstValid()
    if expert is not None and expert.active:
        steered = ExpertSampler(sampler, expert.demonstrations, expert.share)
        sampler, selector = steered, ExpertSelector(selector, steered)
        if expert.bonus > 0:
            reward = AnnealedExpertBonus(
                reward, steered, beta=expert.bonus, horizon=expert.anneal_rounds,
                schedule=expert.schedule, success_reward=task.max_reward,
            )  # fmt: skip
    usage = RoundUsage(reward, samplers.meter)
    loop = ImprovementLoop(
        LoopPieces(
            context=context,
            prompt=prompt,
            sampler=sampler,
            parser=ResponseParser(),
            selector=selector,
            reward=usage,
        ),
        LoopPolicy(
            n_samples=1,
            max_resamples=0,
            fallback=lambda state: "",  # an empty response: scored (0), never a crash
            # A failed call (empty answer, endpoint trouble past its retries, a prompt too
            # long for the endpoint) is a failed attempt; an endpoint down for good stops
            # the run (resumable).
            model_errors=(*MODEL_ERRORS, ContextOverflowError),
        ),
        task={"task_text": task_text, "problem": problem.id, **problem.data},
        buffer=buffer,
        seed=seed,
    )
    return loop, usage
