"""ICRL prompting and its baselines as configurations of the shared core.

ICRL prompting (seed ``002_…``): one response per round; the prompt holds the earlier
attempts at the same problem, each with its reward tags, then an ICRL instruction, then
the task. *Preset* gives the exploration instruction on even rounds (round 0 included)
and the exploitation instruction on odd rounds; *Autonomous* always gives the combined
instruction and lets the model choose. Ablations are switches
(:data:`ICRL_ABLATIONS`): zero reward, no reward, short context (last 3 attempts),
explore-only (without rewards), exploit-only and no instruction.

Baselines on the same pieces: Best-of-N (independent samples, no context), Self-Refine
(the model critiques each response; the critiques, not the rewards, are shown) and
Reflexion (after a failed attempt the model writes a reflection; the reflections and the
last attempt are shown).

Pieces: a context builder (:class:`~icpi.core.context.AllAttempts`,
:class:`~icpi.core.context.LastN`, :class:`~icpi.core.context.SortedByReward` or
:class:`ReflexionMemory`) + a :class:`~icpi.core.prompts.PromptTemplate` with a per-round
instruction + :class:`~icpi.language.common.ResponseParser` +
:class:`~icpi.core.selectors.FirstValid` + the task's reward provider (wrapped by
:func:`self_critique` or :func:`reflection` for the baselines).
"""

from __future__ import annotations

import logging
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
    SortedByReward,
)
from icpi.language.common import ResponseParser, RoundUsage, Samplers
from icpi.language.tasks import LanguageTask, Problem, reward_tag
from icpi.llm.errors import MODEL_ERRORS

log = logging.getLogger(__name__)

ICRL_METHODS = ("icrl-preset", "icrl-autonomous")
BASELINES = ("best-of-n", "self-refine", "reflexion")
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
#: Math: each attempt cut to this many characters (≈ 512 tokens), context budget in chars.
MATH_ATTEMPT_CHARS = 2000
MATH_CONTEXT_CHARS = 8000

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


def tagged_response(
    attempt: Attempt, display: RewardDisplay = "real", max_chars: int | None = None
) -> str:
    """Write an attempt's response with its reward tags.

    Per-line rewards (``info["line_rewards"]``, Game of 24 steps and answer) are tagged at
    the end of their lines and the total follows; other tasks get one tag after the text.

    Args:
        attempt: The attempt.
        display: ``real`` rewards, ``zero`` (all shown as 0) or ``none`` (no tags).
        max_chars: Cut the response to this many characters first.

    Returns:
        The tagged text.
    """
    text = str(attempt.action or "").strip() or "(no response)"
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars] + " …"
    if display == "none":
        return text

    def shown(x: float) -> float:
        return 0.0 if display == "zero" or x != x else float(x)

    lines = text.splitlines()
    per_line = {int(i): float(r) for i, r in attempt.info.get("line_rewards", [])}
    if per_line:
        lines = [
            f"{ln} {reward_tag(shown(per_line[i]))}" if i in per_line else ln
            for i, ln in enumerate(lines)
        ]
        return "\n".join([*lines, f"Total reward: {reward_tag(shown(attempt.reward))}"])
    return "\n".join([*lines, reward_tag(shown(attempt.reward))])


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


def icrl_context(task: LanguageTask, ablation: str | None) -> ContextBuilder:
    """Return the attempt buffer view of ICRL on a task.

    Args:
        task: The task (Game of 24: all attempts; writing: last 25; math: sorted by reward
            within a budget).
        ablation: ``short-context`` keeps the last 3 attempts; reward ablations change the
            tags.

    Returns:
        The context builder.
    """
    display: RewardDisplay = "real"
    if ablation == "zero-reward":
        display = "zero"
    elif ablation in ("no-reward", "explore-only"):
        display = "none"
    if ablation == "short-context":
        return LastN(SHORT_CONTEXT, view=attempt_view(display))
    if task.name == "writing":
        return LastN(WRITING_WINDOW, view=attempt_view(display))
    if task.name == "math":
        return SortedByReward(
            view=attempt_view(display, MATH_ATTEMPT_CHARS),
            max_chars=MATH_CONTEXT_CHARS,
            size=lambda ex: len(str(ex["block"])),
        )
    return AllAttempts(view=attempt_view(display))


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

Your attempt:
{response}

This attempt was judged wrong. In two or three sentences, explain what went wrong and what \
you will do differently next time.
Reflection:"""

REFINE_INSTRUCTION = (
    "Above are your earlier responses to this task, each with feedback on it. Write an "
    "improved response that fixes the problems the feedback points out."
)
REFLEXION_INSTRUCTION = (
    "Above are your reflections on earlier failed attempts and your last attempt. Use them "
    "to write a better response."
)


class ModelCommentary:
    """Evaluate with the task's reward, then ask the model to comment on the response.

    Self-Refine's critique (after every attempt) and Reflexion's reflection (after a
    failure only) are both this reward wrapper: the task's reward is recorded but not shown,
    and the comment is stored under ``info[key]`` for the context builder to show.
    """

    def __init__(
        self,
        inner: RewardProvider,
        helper: Sampler,
        task_text: str,
        *,
        prompt: str,
        key: str,
        only_after_failure: bool,
        seed: int = 0,
    ) -> None:
        """Wrap the task's reward.

        Args:
            inner: The task's reward provider (its ``success`` flags a failure).
            helper: Sampler writing the comment.
            task_text: The task text.
            prompt: Template with ``{task_text}`` and ``{response}``.
            key: Info key of the comment (``feedback`` or ``reflection``).
            only_after_failure: Comment only when the attempt did not succeed.
            seed: Seed of the comment calls (offset by iteration).
        """
        self.inner = inner
        self.helper = helper
        self.task_text = task_text
        self.prompt = prompt
        self.key = key
        self.only_after_failure = only_after_failure
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
        if not (self.only_after_failure and fb.info.get("success")):
            prompt = self.prompt.format(task_text=self.task_text, response=str(action or ""))
            batch = self.helper.sample(prompt, 1, self.seed + state.iteration)
            comment = (batch.texts or [""])[0].strip()
        return Feedback(fb.reward, {**fb.info, self.key: comment})


def self_critique(
    inner: RewardProvider, helper: Sampler, task_text: str, seed: int = 0
) -> ModelCommentary:
    """Self-Refine's reward: a critique of every response (stored as ``feedback``)."""
    return ModelCommentary(
        inner, helper, task_text, prompt=CRITIQUE_PROMPT, key="feedback",
        only_after_failure=False, seed=seed,
    )  # fmt: skip


def reflection(
    inner: RewardProvider, helper: Sampler, task_text: str, seed: int = 0
) -> ModelCommentary:
    """Reflexion's reward: a reflection after each failure (stored as ``reflection``)."""
    return ModelCommentary(
        inner, helper, task_text, prompt=REFLECT_PROMPT, key="reflection",
        only_after_failure=True, seed=seed,
    )  # fmt: skip


def _refine_view(attempt: Attempt) -> Mapping[str, Any]:
    body = str(attempt.action or "").strip() or "(no response)"
    feedback = attempt.info.get("feedback", "")
    return {"block": f"<attempt>\nResponse:\n{body}\nFeedback: {feedback}\n</attempt>"}


class ReflexionMemory:
    """Reflexion's context: every reflection so far, then the last attempt."""

    def build(self, state: LoopState) -> list[Mapping[str, Any]]:
        """Return the reflections and the last attempt as blocks.

        Args:
            state: The loop state.

        Returns:
            One block per reflection, then one for the last attempt.
        """
        out: list[Mapping[str, Any]] = [
            {"block": f"Reflection after attempt {a.iteration + 1}: {a.info['reflection']}"}
            for a in state.history
            if a.info.get("reflection")
        ]
        if state.history:
            last = state.history[-1]
            verdict = "correct" if last.info.get("success") else "wrong"
            body = str(last.action or "").strip() or "(no response)"
            out.append({"block": f"Last attempt ({verdict}):\n{body}"})
        return out


def _baseline_prompt(follow_up: str | None, chat: bool) -> PromptTemplate:
    def query(q: Mapping[str, Any]) -> str:
        if follow_up and q["iteration"] > 0:
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
) -> tuple[ImprovementLoop, RoundUsage]:
    """Assemble ICRL prompting or one of its baselines on one problem.

    Args:
        method: ``icrl-preset``, ``icrl-autonomous``, ``best-of-n``, ``self-refine`` or
            ``reflexion``.
        task: The task.
        problem: The problem.
        samplers: The run's samplers (policy, judge, helper).
        ablation: An ICRL ablation (:data:`ICRL_ABLATIONS`), ICRL methods only.
        buffer: The problem's experience buffer (resumed if it holds attempts).
        seed: Seed of the problem's calls.
        chat: Render chat messages rather than plain text.

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
    task_text = task.describe(problem)
    base = task.reward(problem, samplers.judge)
    context: ContextBuilder
    reward: RewardProvider = base
    if method in ICRL_METHODS:
        context = icrl_context(task, ablation)
        prompt = icrl_prompt(instruction_for(method, ablation), chat)
    elif method == "best-of-n":
        context = LastN(0)
        prompt = _baseline_prompt(None, chat)
    elif method == "self-refine":
        context = AllAttempts(view=_refine_view)
        prompt = _baseline_prompt(REFINE_INSTRUCTION, chat)
        reward = self_critique(base, samplers.helper, task_text, seed)
    elif method == "reflexion":
        context = ReflexionMemory()
        prompt = _baseline_prompt(REFLEXION_INSTRUCTION, chat)
        reward = reflection(base, samplers.helper, task_text, seed)
    else:
        raise ValueError(f"unknown method {method!r}")
    usage = RoundUsage(reward, samplers.meter)
    loop = ImprovementLoop(
        LoopPieces(
            context=context,
            prompt=prompt,
            sampler=samplers.policy,
            parser=ResponseParser(),
            selector=FirstValid(),
            reward=usage,
        ),
        LoopPolicy(
            n_samples=1,
            max_resamples=0,
            model_errors=MODEL_ERRORS,
            fallback=lambda state: "",
        ),
        task={"task_text": task_text, "problem": problem.id, **problem.data},
        buffer=buffer,
        seed=seed,
    )
    return loop, usage
