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

Ablations (:data:`ME_ABLATIONS`): ``no-entropy`` keeps a random valid candidate,
``no-reward`` lists the ideas without reward tags, ``oracle`` uses the true correctness
instead of the vote.

Pieces: :class:`IdeaMemory` (context) + a :class:`~icpi.core.prompts.PromptTemplate` +
:class:`AnswerParser` + :class:`MeIcpoSelector` (built on
:class:`~icpi.core.selectors.MajorityVote`, :class:`~icpi.core.selectors.MinimumEntropy`
and :func:`~icpi.core.selectors.answer_entropy`) + a
:class:`~icpi.core.rewards.CallableReward` returning the self-reward.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from icpi.core import (
    CallableReward,
    ExperienceBuffer,
    ImprovementLoop,
    LoopPieces,
    LoopPolicy,
    LoopState,
    MajorityVote,
    MinimumEntropy,
    ParseResult,
    PromptTemplate,
    Selection,
    answer_entropy,
    derive_seed,
)
from icpi.language.common import RoundUsage, Samplers
from icpi.language.tasks import LanguageTask, Problem
from icpi.llm.errors import MODEL_ERRORS

log = logging.getLogger(__name__)

ME_ABLATIONS = ("no-entropy", "no-reward", "oracle")

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
class MeIcpoSettings:
    """Knobs of ME-ICPO (the paper's values are the defaults)."""

    k: int = 16
    """Candidates per round."""
    entropy_k: int = 16
    """Samples drawn to score one candidate's entropy."""
    final_k: int = 16
    """Final samples (Mean@k, Maj@k)."""
    ablation: str | None = None
    """``no-entropy``, ``no-reward``, ``oracle`` or ``None``."""


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

    def __init__(self, show_reward: bool = True) -> None:
        """Create the builder.

        Args:
            show_reward: Group ideas by reward (else the ``no-reward`` ablation's list).
        """
        self.show_reward = show_reward

    def ideas(self, state: LoopState) -> list[tuple[str, float | None]]:
        """Return ``(summary, reward)`` of every kept candidate.

        Args:
            state: The loop state.

        Returns:
            The ideas, oldest first.
        """
        return [
            (str(a.action["summary"]), a.reward)
            for a in state.history
            if isinstance(a.action, Mapping) and a.action.get("summary")
        ]

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

    def __init__(self, task: LanguageTask) -> None:
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


class MeIcpoSelector:
    """Majority-vote self-rewards, summaries, and the minimum-entropy candidate."""

    def __init__(
        self,
        task: LanguageTask,
        problem: Problem,
        samplers: Samplers,
        memory: IdeaMemory,
        prompt: PromptTemplate,
        settings: MeIcpoSettings,
        seed: int = 0,
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
        """
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
        batch = self.samplers.helper.sample(SUMMARY_PROMPT.format(response=response), 1, seed)
        text = " ".join((batch.texts or [""])[0].split())
        if not text.rstrip(". ").endswith(answer):
            text = f"{text} Final answer: {answer}".strip()
        return text

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
        batch = self.samplers.policy.sample(prompt, self.settings.entropy_k, seed)
        return answer_entropy([self.task.final_answer(t) for t in batch.texts])

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
        vote = MajorityVote(key=lambda v: v["answer"]).select(results, state)
        if vote.index is None:
            return Selection(index=None, info={"reason": "no candidate with a final answer"})
        label = vote.value["answer"]
        answers = [r.value["answer"] if r.ok else None for r in results]
        correct = [self.task.is_correct(self.problem, a) for a in answers]
        if self.settings.ablation == "oracle":
            rewards = [float(c) for c in correct]
        else:
            rewards = [float(a is not None and a == label) for a in answers]
        summaries: dict[int, str] = {}

        def summary_of(i: int) -> str:
            if i not in summaries:
                value = results[i].value
                summaries[i] = self.summarise(value["response"], value["answer"], state, i)
            return summaries[i]

        index_of = {id(r): i for i, r in enumerate(results)}
        info: dict[str, Any] = {
            "pseudo_label": label,
            "votes": vote.info.get("votes", {}),
            "self_rewards": rewards,
            "correct": correct,
        }
        if self.settings.ablation == "no-entropy":
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


def _self_reward(value: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
    return float(value["self_reward"]), {
        "success": bool(value["correct"]),
        "answer": value["answer"],
        "mean_at_k": value["mean_correct"],
    }


def build_me_icpo_loop(
    task: LanguageTask,
    problem: Problem,
    samplers: Samplers,
    settings: MeIcpoSettings,
    *,
    buffer: ExperienceBuffer | None = None,
    seed: int = 0,
    chat: bool = False,
) -> tuple[ImprovementLoop, RoundUsage]:
    """Assemble ME-ICPO on one problem (one loop iteration per round).

    Args:
        task: A task with final answers (Game of 24, math).
        problem: The problem.
        samplers: The run's samplers.
        settings: k, entropy_k, final_k, ablation.
        buffer: The problem's experience buffer (resumed if it holds attempts).
        seed: Seed of the problem's calls.
        chat: Render chat messages.

    Returns:
        The loop and its reward wrapper (mark each round with ``start_round``).

    Raises:
        ValueError: On a task without final answers or an unknown ablation.
    """
    if not task.has_answers:
        raise ValueError(f"ME-ICPO votes on final answers; task {task.name!r} has none")
    if settings.ablation is not None and settings.ablation not in ME_ABLATIONS:
        raise ValueError(f"unknown ME-ICPO ablation {settings.ablation!r} ({ME_ABLATIONS})")
    memory = IdeaMemory(show_reward=settings.ablation != "no-reward")
    prompt = me_prompt(chat)
    selector = MeIcpoSelector(task, problem, samplers, memory, prompt, settings, seed)
    usage = RoundUsage(CallableReward(_self_reward), samplers.meter)
    loop = ImprovementLoop(
        LoopPieces(
            context=memory,
            prompt=prompt,
            sampler=samplers.policy,
            parser=AnswerParser(task),
            selector=selector,
            reward=usage,
        ),
        LoopPolicy(
            n_samples=settings.k,
            max_resamples=0,
            model_errors=MODEL_ERRORS,
            invalid_reward=0.0,
        ),
        task={"task_text": task.describe(problem), "problem": problem.id},
        buffer=buffer,
        seed=seed,
    )
    return loop, usage


def final_sampling(
    loop: ImprovementLoop,
    task: LanguageTask,
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
    batch = samplers.policy.sample(prompt, k, derive_seed(seed, state.iteration, 5000))
    answers = [task.final_answer(t) for t in batch.texts]
    correct = [task.is_correct(problem, a) for a in answers]
    counts = Counter(a for a in answers if a is not None)
    maj = max(counts, key=lambda a: (counts[a], -answers.index(a))) if counts else None
    return {
        "k": k,
        "answers": answers,
        "correct": correct,
        "mean_at_k": sum(correct) / len(correct) if correct else 0.0,
        "maj_answer": maj,
        "maj_at_k": task.is_correct(problem, maj),
        "usage": samplers.meter.since(mark),
    }
