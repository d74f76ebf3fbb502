"""Creative writing: four paragraphs ending with given sentences, scored by an LLM judge.

The reward is a coherence score 1–10 from the model's own judge against a fixed reference
passage (the paper's setting); success is a score at or above a threshold.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from icpi.core import Feedback, LoopState, RewardProvider, Sampler
from icpi.language.budget import shorten
from icpi.language.tasks.base import LanguageTask, Problem, TaskSettings, read_verdict
from icpi.language.tasks.registry import register

log = logging.getLogger(__name__)

#: Sentences a passage's paragraphs must end with (written for this package).
WRITING_SENTENCES = (
    "The kettle had been whistling for an hour before anyone noticed the kitchen was empty.",
    "Nobody told the pigeons that the square had been sold to a parking company.",
    "She kept the broken compass because it always pointed somewhere interesting.",
    "By the time the bus arrived, the queue had become a small and friendly village.",
    "The lighthouse keeper counted ships the way other people count sheep.",
    "My grandmother's recipe called for a pinch of patience and a spoonful of gossip.",
    "The robot apologised to the vacuum cleaner for stepping on its cable.",
    "Every map in the library showed a different river running through our town.",
    "He learned to whistle backwards during the longest winter of his life.",
    "The violin case held sandwiches, a torch, and a very confused frog.",
    "On Tuesdays the bakery sold bread shaped like the moon's current phase.",
    "The last letter arrived forty years late and still smelled of oranges.",
    "Our neighbour's garden gnome has seen more of the world than I have.",
    "The storm knocked out the power but not the argument about the board game.",
    "Somewhere between the third and fourth floor, the elevator started humming a waltz.",
    "The museum guard swore the dinosaur skeleton had moved one toe overnight.",
)
#: Lowest and highest coherence score.
LOW, HIGH = 1.0, 10.0


class WritingReward:
    """Coherence 1–10 from an LLM judge; success when it reaches a threshold."""

    def __init__(
        self,
        judge: Sampler,
        template: str,
        reference: str,
        threshold: float = 7.0,
        max_chars: int | None = None,
    ) -> None:
        """Create the provider.

        Args:
            judge: Judge sampler (greedy decoding recommended).
            template: Judge prompt with ``{reference}`` and ``{action}``.
            reference: The passage the judge compares against.
            threshold: Score counted as a success.
            max_chars: Longest text shown to the judge (cut at the end; ``None``: whole).
        """
        self.judge = judge
        self.template = template
        self.reference = reference
        self.threshold = threshold
        self.max_chars = max_chars

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Ask the judge for a coherence score.

        Args:
            action: The passage.
            state: Unused.

        Returns:
            The score (1 when the judge gives none); ``info`` holds ``success``, the
            judge's answer and whether it gave a score.
        """
        text = str(action or "")
        if self.max_chars is not None:
            text = shorten(text, self.max_chars)
        prompt = self.template.format(reference=self.reference, action=text)
        batch = self.judge.sample(prompt, 1, 0)
        answer = batch.texts[0] if batch.texts else ""
        score = read_verdict(answer, prompt)
        ok = score is not None
        if score is None:
            log.warning("judge gave no coherence score in %r; using %g", answer[:80], LOW)
        value = LOW if score is None else min(max(score, LOW), HIGH)
        return Feedback(
            value,
            {"success": value >= self.threshold, "judge_answer": answer, "judge_ok": ok},
        )


@dataclass(frozen=True)
class WritingSettings(TaskSettings):
    """Settings of creative writing."""

    threshold: float = 7.0
    """Coherence score counted as a success."""


@register
class WritingTask(LanguageTask[WritingSettings]):
    """Creative writing: four paragraphs ending with given sentences."""

    name = "writing"
    summary = "Creative writing: 4 paragraphs ending in given sentences, judged for coherence"
    Settings = WritingSettings
    max_reward = HIGH

    @property
    def reward_seen(self) -> str:
        """Which reward the method sees."""
        return (
            "the model's own judge scores coherence 1-10 against a fixed reference passage; "
            "success is a score at or above the threshold"
        )

    def problems(self, seed: int, start: int, count: int) -> list[Problem]:
        """Draw sentence quadruples with a seeded generator (the ``start``-th draw first).

        Args:
            seed: Generator seed.
            start: Position of the first problem among the draws.
            count: Number of problems.

        Returns:
            Problems with ``sentences`` and ``position``.
        """
        rng = random.Random(seed)
        draws = [rng.sample(WRITING_SENTENCES, 4) for _ in range(start + count)]
        return [
            Problem(
                index=k,
                id=f"writing:{seed}:{start + k}",
                data={"sentences": s, "position": start + k},
            )
            for k, s in enumerate(draws[start:])
        ]

    def describe(self, problem: Problem) -> str:
        """Return the writing prompt."""
        s = problem.data["sentences"]
        return self.prompts.writing_task.format(s1=s[0], s2=s[1], s3=s[2], s4=s[3])

    def reward(
        self, problem: Problem, judge: Sampler | None, *, judged: bool = True
    ) -> RewardProvider:
        """Return the coherence judge (success itself needs it, so it is always asked).

        Raises:
            ValueError: Without a judge sampler.
        """
        if judge is None:
            raise ValueError("the writing task needs a judge sampler")
        return WritingReward(
            judge,
            self.prompts.writing_judge,
            self.prompts.writing_reference,
            self.settings.threshold,
            self.judge_chars,
        )
