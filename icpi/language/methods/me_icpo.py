"""ME-ICPO (minimum-entropy in-context policy optimisation) as a configuration of the core.

Per round (seed ``000_…``): sample ``k`` candidates → the majority vote over their final
answers is a pseudo-label → each candidate's self-reward is 1 if its answer equals the
label, else 0 → each valid candidate is summarised (a few sentences ending with its final
answer) → for each, the memory plus its summary (as a good idea if rewarded 1, a bad one
if 0) forms a context from which ``entropy_k`` answers are drawn; their Shannon entropy
(bits) plus the invalid-answer penalty ``log2(entropy_k) × invalid share`` scores it → the
candidate with minimum entropy is kept and its summary joins the memory. After the rounds,
``final_k`` samples from the final context give Mean@k (share correct) and Maj@k (the
majority answer correct).

The vote compares the task's answer keys (:meth:`LanguageTask[Any].vote_keys`): for Game of
24 the value an expression reaches with the numbers it uses (``(6-4)*(4+8)`` and
``(4+8)*(6-4)`` are one vote), for math symbolically equal answers (``0.5`` and ``1/2``).

Ablations (:data:`MeAblation`): ``no-entropy`` keeps a random valid candidate,
``no-reward`` lists the ideas without reward tags, ``no-entropy+no-reward`` both (the
paper's "w/o Entropy & Reward"), ``oracle`` uses the true correctness instead of the vote.

Expert steering (seed ``001_…``, :mod:`icpi.core.expert`): a share of the ``k``
candidates can be drawn with a solved example in context; with reject sampling, an
expert-conditioned candidate whose answer disagrees with the on-policy majority is dropped.

Pieces: :class:`IdeaMemory` (context) + a :class:`~icpi.core.prompts.PromptTemplate` +
:class:`AnswerParser` + :class:`MeIcpoSelector` (built on
:class:`~icpi.core.selectors.MajorityVote`, :class:`~icpi.core.selectors.MinimumEntropy`
and :func:`~icpi.core.selectors.answer_entropy`) + a
:class:`~icpi.core.rewards.CallableReward` returning the self-reward.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from icpi.core import (
    CallableReward,
    ExperienceBuffer,
    ImprovementLoop,
    LastN,
    LoopPieces,
    LoopPolicy,
    LoopState,
    MajorityVote,
    MinimumEntropy,
    ParseResult,
    PromptTemplate,
    Sampler,
    Selection,
    Selector,
    answer_entropy,
    derive_seed,
)
from icpi.core.expert import Accept, ExpertSampler, ExpertSelector
from icpi.errors import ConfigError
from icpi.language.budget import Budgeted, ContextOverflowError, OverflowGuard, TokenBudget, shorten
from icpi.language.metering import RoundUsage, Samplers
from icpi.language.methods.base import ExpertOptions, LangMethod
from icpi.language.methods.registry import register
from icpi.language.tasks.base import LanguageTask, Problem
from icpi.llm.errors import MODEL_ERRORS

log = logging.getLogger(__name__)

#: Failures of an inner call (entropy samples, summaries, final samples): no answer.
NO_ANSWER: tuple[type[BaseException], ...] = (ContextOverflowError, *MODEL_ERRORS)

MeAblation = Literal["no-entropy", "no-reward", "no-entropy+no-reward", "oracle"]

SUMMARY_PROMPT = """\
Here is an attempt at a problem.

{response}

Summarise the key idea of this attempt in at most three sentences (under 100 words). End \
with its final answer, written as: Final answer: <answer>
Summary:"""

IDEAS_GOOD = "Good ideas (reward 1):"
IDEAS_BAD = "Bad ideas (reward 0):"
IDEAS_PLAIN = "Ideas from earlier attempts:"
SOLVE = (
    "Use the ideas above where they help (follow the good ones, avoid the bad ones) and "
    "solve the task below in the required format."
)


@dataclass(frozen=True)
class MeIcpoSettings(ExpertOptions):
    """Settings of ME-ICPO (the paper's values are the defaults)."""

    k: int = 16
    """Candidates per round."""
    entropy_k: int = 16
    """Samples drawn to score one candidate's entropy."""
    final_k: int = 16
    """Final samples (Mean@k, Maj@k)."""
    ablation: MeAblation | None = None
    """ME-ICPO ablation: ``no-entropy``, ``no-reward``, ``no-entropy+no-reward`` or
    ``oracle``."""
    expert_reject: bool = False
    """Seed 001, expert-region reject sampling: drop expert candidates that disagree with
    the on-policy majority."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.k, self.entropy_k, self.final_k) < 1:
            raise ConfigError("k, entropy_k and final_k must be >= 1")
        if self.expert_reject and not self.expert_share:
            raise ConfigError("expert reject sampling needs expert_share > 0")

    @property
    def random_choice(self) -> bool:
        """Keep a random valid candidate instead of the minimum-entropy one."""
        return self.ablation in ("no-entropy", "no-entropy+no-reward")

    @property
    def show_reward(self) -> bool:
        """Group the ideas by reward."""
        return self.ablation not in ("no-reward", "no-entropy+no-reward")


def render_ideas(ideas: Sequence[tuple[str, float | None]], show_reward: bool = True) -> str:
    """Write the idea memory as good / bad lists (or one plain list).

    Args:
        ideas: ``(summary, reward)`` pairs, oldest first (reward 1 good, 0 bad).
        show_reward: Group by reward; else one list without reward tags.

    Returns:
        The text (empty without ideas).
    """
    if not ideas:
        return ""
    if not show_reward:
        return "\n".join([IDEAS_PLAIN, *(f"- {s}" for s, _ in ideas)])
    good = [s for s, r in ideas if r is not None and r > 0]
    bad = [s for s, r in ideas if not (r is not None and r > 0)]
    parts = []
    if good:
        parts += [IDEAS_GOOD, *(f"- {s}" for s in good)]
    if bad:
        parts += [IDEAS_BAD, *(f"- {s}" for s in bad)]
    return "\n".join(parts)


class IdeaMemory:
    """The summaries kept in earlier rounds, as one block of good / bad ideas."""

    def __init__(
        self,
        show_reward: bool = True,
        budget: TokenBudget | None = None,
        overhead: Callable[[LoopState], str] = lambda state: "",
    ) -> None:
        """Create the builder.

        Args:
            show_reward: Group ideas by reward (else the ``no-reward`` ablation's list).
            budget: Prompt token budget: the newest ideas that fit are kept.
            overhead: The rest of the prompt of a state (counted against the budget).
        """
        self.show_reward = show_reward
        self.budget = budget
        self.overhead = overhead

    def ideas(self, state: LoopState) -> list[tuple[str, float | None]]:
        """Return ``(summary, reward)`` of every kept candidate.

        Args:
            state: The loop state.

        Returns:
            The ideas, oldest first.
        """
        ideas: list[tuple[str, float | None]] = [
            (str(a.action["summary"]), a.reward)
            for a in state.history
            if isinstance(a.action, Mapping) and a.action.get("summary")
        ]
        if self.budget is None:
            return ideas
        blocks = [{"block": f"- {s}", "idea": (s, r)} for s, r in ideas]
        fit = Budgeted(LastN(0), self.budget, lambda st: f"{self.overhead(st)} {SOLVE}")
        return [ex["idea"] for ex in fit.fit(blocks, state)]

    def block(self, ideas: Sequence[tuple[str, float | None]]) -> list[Mapping[str, Any]]:
        """Return the prompt examples for a list of ideas.

        Args:
            ideas: ``(summary, reward)`` pairs.

        Returns:
            One ``{"block": text}`` example, or none.
        """
        text = render_ideas(ideas, self.show_reward)
        return [{"block": f"{text}\n\n{SOLVE}"}] if text else []

    def build(self, state: LoopState) -> list[Mapping[str, Any]]:
        """Return the memory block of this round."""
        return self.block(self.ideas(state))


def me_prompt(chat: bool) -> PromptTemplate:
    """Return ME-ICPO's prompt: the idea memory and how to use it, then the task.

    Args:
        chat: Render chat messages.

    Returns:
        The template (task text from the state's ``task_text``).
    """
    return PromptTemplate(
        example=lambda ex: str(ex["block"]),
        query=lambda q: str(q["task_text"]),
        separator="\n\n",
        chat=chat,
    )


class AnswerParser:
    """A candidate is valid when the task reads a final answer from it."""

    def __init__(self, task: LanguageTask[Any]) -> None:
        """Create the parser.

        Args:
            task: The task (its :meth:`final_answer`).
        """
        self.task = task

    def __call__(self, text: str) -> ParseResult:
        """Parse one candidate.

        Args:
            text: The completion.

        Returns:
            ``ok`` with ``{"response", "answer"}``, or ``no_answer``.
        """
        answer = self.task.final_answer(text or "")
        if answer is None:
            return ParseResult(ok=False, error="no_answer", raw=text, detail="no final answer")
        return ParseResult(ok=True, value={"response": text.strip(), "answer": answer}, raw=text)


_FINAL = re.compile(r"final\s+answer\s*[:：]", re.IGNORECASE)


def with_final_answer(summary: str, answer: str, task: LanguageTask[Any]) -> str:
    """A summary that ends with the candidate's final answer, stated once.

    A summary whose last ``Final answer:`` already states the answer (in any spelling the
    vote counts as the same: ``(6 - 4) * (4 + 8) = 24`` for ``(6-4)*(4+8)``) is kept; a
    different or missing one is replaced by ``Final answer: <answer>``.

    Args:
        summary: The helper's summary.
        answer: The candidate's final answer.
        task: The task (its vote keys).

    Returns:
        The summary.
    """
    marks = list(_FINAL.finditer(summary))
    if marks:
        stated = summary[marks[-1].end() :].strip().rstrip(".").strip()
        want = task.vote_keys([answer])[0]
        keys = task.vote_keys([stated, stated.split("=")[0].strip()])
        if want is not None and want in keys:
            return summary
        summary = summary[: marks[-1].start()].rstrip()
    return f"{summary} Final answer: {answer}".strip()


class MeIcpoSelector:
    """Majority-vote self-rewards, summaries, and the minimum-entropy candidate."""

    def __init__(
        self,
        task: LanguageTask[Any],
        problem: Problem,
        samplers: Samplers,
        memory: IdeaMemory,
        prompt: PromptTemplate,
        settings: MeIcpoSettings,
        seed: int = 0,
        helper_chars: int | None = None,
    ) -> None:
        """Create the selector.

        Args:
            task: The task (answers and their correctness).
            problem: The problem.
            samplers: ``policy`` draws entropy samples, ``helper`` writes summaries.
            memory: The idea memory (context builder).
            prompt: The round prompt.
            settings: k, entropy_k and ablation.
            seed: Seed of the problem's calls.
            helper_chars: Longest candidate shown to the summary helper (cut keeping its
                answer; ``None``: whole).
        """
        self.helper_chars = helper_chars
        self.task = task
        self.problem = problem
        self.samplers = samplers
        self.memory = memory
        self.prompt = prompt
        self.settings = settings
        self.seed = seed

    def summarise(self, response: str, answer: str, state: LoopState, i: int) -> str:
        """Summarise a candidate; the summary always ends with its final answer.

        Args:
            response: The candidate.
            answer: Its final answer.
            state: The loop state.
            i: Candidate index (seeds the call).

        Returns:
            The summary.
        """
        seed = derive_seed(self.seed, state.iteration, 100 + i)
        if self.helper_chars is not None:
            response = shorten(response, self.helper_chars, self.task.answer_span(response))
        batch = self.samplers.helper.sample(SUMMARY_PROMPT.format(response=response), 1, seed)
        return with_final_answer(" ".join((batch.texts or [""])[0].split()), answer, self.task)

    def entropy(self, summary: str, reward: float, state: LoopState, i: int) -> float:
        """Entropy of the answers drawn with one candidate's summary added to the memory.

        Args:
            summary: The candidate's summary.
            reward: Its reward (places it among good or bad ideas).
            state: The loop state.
            i: Candidate index (seeds the call).

        Returns:
            :func:`~icpi.core.selectors.answer_entropy` (bits, invalid share penalised).
        """
        ideas = [*self.memory.ideas(state), (summary, reward)]
        prompt = self.prompt.render(
            LoopState(state.iteration + 1, state.history, state.task), self.memory.block(ideas)
        )
        seed = derive_seed(self.seed, state.iteration, 1000 + i)
        try:
            batch = OverflowGuard(self.samplers.policy).sample(
                prompt, self.settings.entropy_k, seed
            )
        except NO_ANSWER as exc:
            # Scored as a context with no valid answer; the round goes on.
            log.warning("no entropy samples for candidate %d: %s", i, exc)
            return answer_entropy([None] * self.settings.entropy_k)
        answers = [self.task.final_answer(t) for t in batch.texts]
        return answer_entropy(self.task.vote_keys(answers))

    def select(self, results: Sequence[ParseResult], state: LoopState) -> Selection:
        """Vote, reward, summarise and keep the minimum-entropy (or a random) candidate.

        Args:
            results: Parsed candidates.
            state: The loop state.

        Returns:
            The selection; its value holds ``response``, ``answer``, ``summary``,
            ``self_reward``, ``correct`` and ``mean_correct`` (share of the k candidates
            that are correct, Mean@k of the round).
        """
        answers = [r.value["answer"] if r.ok else None for r in results]
        keys = self.task.vote_keys(answers)
        keyed = [ParseResult(ok=k is not None, value=k) for k in keys]
        vote = MajorityVote().select(keyed, state)
        if vote.index is None:
            return Selection(index=None, info={"reason": "no candidate with a final answer"})
        label, label_key = answers[vote.index], keys[vote.index]
        correct = [self.task.is_correct(self.problem, a) for a in answers]
        if self.settings.ablation == "oracle":
            rewards = [float(c) for c in correct]
        else:
            rewards = [float(k is not None and k == label_key) for k in keys]
        summaries: dict[int, str] = {}

        def summary_of(i: int) -> str:
            if i not in summaries:
                value = results[i].value
                summaries[i] = self.summarise(value["response"], value["answer"], state, i)
            return summaries[i]

        index_of = {id(r): i for i, r in enumerate(results)}
        info: dict[str, Any] = {
            "pseudo_label": label,
            "label_key": label_key,
            "votes": vote.info.get("votes", {}),
            "self_rewards": rewards,
            "correct": correct,
        }
        if self.settings.random_choice:
            valid = [i for i, r in enumerate(results) if r.ok]
            rng = random.Random(derive_seed(self.seed, state.iteration, 999))
            chosen = rng.choice(valid)
        else:

            def score(r: ParseResult, st: LoopState) -> float:
                i = index_of[id(r)]
                return self.entropy(summary_of(i), rewards[i], st, i)

            best = MinimumEntropy(score).select(results, state)
            assert best.index is not None  # a valid candidate exists
            chosen = best.index
            info["entropies"] = best.info["scores"]
        value = {
            **results[chosen].value,
            "summary": summary_of(chosen),
            "self_reward": rewards[chosen],
            "correct": correct[chosen],
            "mean_correct": sum(correct) / len(correct),
        }
        return Selection(index=chosen, value=value, info=info)


def agrees_with_on_policy(task: LanguageTask[Any]) -> Accept:
    """Expert-region check of ME-ICPO: an expert candidate must agree with the on-policy vote.

    Args:
        task: The task (its vote keys).

    Returns:
        The ``accept`` function of :class:`~icpi.core.expert.ExpertSelector`; with no valid
        on-policy candidate every expert candidate is kept.
    """

    def accept(
        results: Sequence[ParseResult], expert: Sequence[bool], state: LoopState
    ) -> list[bool]:
        answers = [r.value["answer"] if r.ok else None for r in results]
        keys = task.vote_keys(answers)
        on = Counter(k for k, e in zip(keys, expert, strict=True) if k is not None and not e)
        if not on:
            return [True] * len(results)
        top = max(on.values())
        majority = {k for k, c in on.items() if c == top}
        return [not e or k in majority for k, e in zip(keys, expert, strict=True)]

    return accept


def _self_reward(value: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
    return float(value["self_reward"]), {
        "success": bool(value["correct"]),
        "answer": value["answer"],
        "mean_at_k": value["mean_correct"],
    }


@register
class MeIcpo(LangMethod[MeIcpoSettings]):
    """ME-ICPO (see the module docstring): one loop iteration per round, final samples after."""

    name = "me-icpo"
    summary = "ME-ICPO: majority-vote self-reward, summaries, minimum-entropy selection"
    Settings = MeIcpoSettings
    needs_answers = True

    def reward_seen(self) -> str:
        """Which reward the method sees."""
        if self.settings.ablation == "oracle":
            return "the true correctness of each candidate (oracle ablation); summaries tagged 1/0"
        return (
            "self-reward 1 when a candidate's answer agrees with the majority vote of the"
            " round, else 0; the task's own reward is not used; success is checked exactly"
        )

    def build(
        self, problem: Problem, *, buffer: ExperienceBuffer | None = None, seed: int = 0
    ) -> tuple[ImprovementLoop, RoundUsage]:
        """Assemble ME-ICPO on one problem (see :meth:`LangMethod.build`)."""
        ctx, settings = self.ctx, self.settings
        task_text = ctx.task.describe(problem)
        memory = IdeaMemory(settings.show_reward, ctx.budget, lambda state: task_text)
        prompt = me_prompt(ctx.chat)
        selector: Selector = MeIcpoSelector(
            ctx.task, problem, ctx.samplers, memory, prompt, settings, seed, ctx.helper_chars
        )
        sampler: Sampler = OverflowGuard(ctx.samplers.policy)
        expert = self.expert()
        if expert is not None and expert.active:
            steered = ExpertSampler(sampler, expert.demonstrations, expert.share)
            accept = agrees_with_on_policy(ctx.task) if expert.reject else None
            sampler, selector = steered, ExpertSelector(selector, steered, accept)
        usage = RoundUsage(CallableReward(_self_reward), ctx.samplers.meter)
        loop = ImprovementLoop(
            LoopPieces(
                context=memory,
                prompt=prompt,
                sampler=sampler,
                parser=AnswerParser(ctx.task),
                selector=selector,
                reward=usage,
            ),
            LoopPolicy(
                n_samples=settings.k,
                max_resamples=0,
                invalid_reward=0.0,
                # A failed call (empty answers, endpoint trouble past its retries, a prompt
                # too long for the endpoint) is a failed round; an endpoint down for good
                # stops the run (resumable).
                model_errors=(*MODEL_ERRORS, ContextOverflowError),
            ),
            task={"task_text": task_text, "problem": problem.id},
            buffer=buffer,
            seed=seed,
        )
        return loop, usage

    def finish(self, loop: ImprovementLoop, problem: Problem, seed: int) -> dict[str, Any] | None:
        """Draw ``final_k`` answers from the final context: Mean@k and Maj@k."""
        return final_sampling(
            loop, self.ctx.task, problem, self.ctx.samplers, self.settings.final_k, seed
        )


def final_sampling(
    loop: ImprovementLoop,
    task: LanguageTask[Any],
    problem: Problem,
    samplers: Samplers,
    k: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Draw ``k`` answers from the final context and score Mean@k and Maj@k.

    Args:
        loop: The finished loop (its buffer holds the memory).
        task: The task.
        problem: The problem.
        samplers: The run's samplers (``policy`` draws).
        k: Number of samples.
        seed: Seed of the problem's calls.

    Returns:
        ``{"k", "answers", "correct", "mean_at_k", "maj_answer", "maj_at_k", "usage"}``.
    """
    state = loop.state()
    mark = samplers.meter.snapshot()
    prompt = loop.prompt.render(state, loop.context.build(state))
    try:
        seed_k = derive_seed(seed, state.iteration, 5000)
        texts = OverflowGuard(samplers.policy).sample(prompt, k, seed_k).texts
    except NO_ANSWER as exc:  # no answer is no answer
        log.warning("no final samples: %s", exc)
        texts = [""] * k
    answers = [task.final_answer(t) for t in texts]
    correct = [task.is_correct(problem, a) for a in answers]
    keys = task.vote_keys(answers)
    counts = Counter(k for k in keys if k is not None)
    top = max(counts, key=lambda k: (counts[k], -keys.index(k))) if counts else None
    maj = answers[keys.index(top)] if top is not None else None
    return {
        "k": k,
        "answers": answers,
        "correct": correct,
        "mean_at_k": sum(correct) / len(correct) if correct else 0.0,
        "maj_answer": maj,
        "maj_at_k": task.is_correct(problem, maj),
        "usage": samplers.meter.since(mark),
    }
