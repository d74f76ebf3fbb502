r"""Math questions from a JSONL file: reward 1 when the ``<answer>`` equals the reference.

Answers are compared symbolically with ``math-verify`` (``0.5`` = ``1/2`` =
``\frac{1}{2}``; :mod:`icpi.language.mathcheck`). The whole response is read, however
long: the final answer is the last ``<answer>…</answer>`` (else ``\boxed{…}``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icpi.core import Feedback, LoopState, RewardProvider, Sampler, TextAnswerParser
from icpi.errors import ConfigError
from icpi.language.mathcheck import answers_equal
from icpi.language.tasks.base import LanguageTask, Problem, TaskSettings
from icpi.language.tasks.registry import register

log = logging.getLogger(__name__)

MATH_TASK = """\
Solve the following problem. Reason step by step, then give only the final answer \
between <answer> and </answer>.
Problem: {question}"""

_ANSWER_PARSER = TextAnswerParser()
_ANSWER_TAG = re.compile(r"<answer>.*?</answer>", re.IGNORECASE | re.DOTALL)


def load_math_problems(path: Path | str, answer_key: str = "answer") -> list[dict[str, str]]:
    """Read math questions (or solved examples) from a JSONL file.

    Args:
        path: One JSON object per line with ``question`` and ``answer`` (extra keys kept).
        answer_key: The second required field (``solution`` for expert demonstrations).

    Returns:
        The rows, in file order.

    Raises:
        ConfigError: If the file is missing, a line is not JSON or lacks a field.
    """
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{lineno}: not JSON: {exc}") from exc
        if not isinstance(row, Mapping) or "question" not in row or answer_key not in row:
            raise ConfigError(f"{path}:{lineno}: needs 'question' and '{answer_key}'")
        rows.append({**row, "question": str(row["question"]), answer_key: str(row[answer_key])})
    return rows


class MathReward:
    """Reward 1 when the final answer equals the reference symbolically, else 0."""

    def __init__(self, answer: str) -> None:
        """Create the provider.

        Args:
            answer: The reference answer.
        """
        self.answer = answer

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Check a response's final answer.

        Args:
            action: The response text (any length).
            state: Unused.

        Returns:
            The reward; ``info`` holds ``success`` and the ``answer`` read.
        """
        r = _ANSWER_PARSER(str(action or ""))
        ok = bool(r.ok and answers_equal(self.answer, str(r.value)))
        return Feedback(1.0 if ok else 0.0, {"success": ok, "answer": r.value})


@dataclass(frozen=True)
class MathSettings(TaskSettings):
    """Settings of the math task."""

    math_file: str | None = None
    """JSONL file of the math task (``question``, ``answer`` per line); required."""

    def __post_init__(self) -> None:
        if not self.math_file:
            raise ConfigError("the math task needs --math-file (JSONL with question, answer)")


@register
class MathTask(LanguageTask[MathSettings]):
    """Math questions from a JSONL file, answers compared symbolically (``math-verify``)."""

    name = "math"
    summary = "Math questions from your JSONL file, answers compared with math-verify"
    Settings = MathSettings
    has_answers = True
    max_reward = 1.0
    stop = ("<attempt>", "</attempt>", "\nProblem:")

    @property
    def path(self) -> str:
        """The JSONL file."""
        assert self.settings.math_file is not None
        return self.settings.math_file

    @property
    def reward_seen(self) -> str:
        """Which reward the method sees."""
        return (
            "1 when the <answer> equals the reference symbolically (math-verify), else 0; "
            "the same check gives success"
        )

    def reward_without_judge(self) -> str | None:
        """The math reward needs no judge: a method that uses none records it all the same."""
        return "none: the method uses no reward; records hold the exact check (no judge is asked)"

    def problems(self, seed: int, start: int, count: int) -> list[Problem]:
        """Return ``count`` questions of the file from line position ``start`` (seed unused).

        Args:
            seed: Unused (file order is kept).
            start: Position of the first question (0-based, blank lines not counted).
            count: Number of questions.

        Returns:
            Problems with ``question``, ``answer`` and ``position``.
        """
        rows = load_math_problems(self.path)[start : start + count]
        if len(rows) < count:
            log.warning("%s holds only %d questions from position %d (asked for %d)",
                        self.path, len(rows), start, count)  # fmt: skip
        return [
            Problem(index=k, id=f"math:{start + k}", data={**row, "position": start + k})
            for k, row in enumerate(rows)
        ]

    def describe(self, problem: Problem) -> str:
        """Return the question with the answer format."""
        return MATH_TASK.format(question=problem.data["question"])

    def reward(
        self, problem: Problem, judge: Sampler | None, *, judged: bool = True
    ) -> RewardProvider:
        """Return the symbolic-match reward (no judge)."""
        return MathReward(problem.data["answer"])

    def final_answer(self, text: str) -> str | None:
        """Return the normalised ``<answer>`` (or boxed) content."""
        r = _ANSWER_PARSER(text)
        return str(r.value) if r.ok else None

    def answer_span(self, text: str) -> tuple[int, int] | None:
        """Return where the last ``<answer>…</answer>`` (else the last box) stands."""
        tags = list(_ANSWER_TAG.finditer(text))
        if tags:
            return tags[-1].span()
        box = text.rfind("\\boxed")
        return (box, len(text)) if box >= 0 else None

    def vote_keys(self, answers: Sequence[str | None]) -> list[str | None]:
        """Group equal answers (``0.5`` and ``1/2`` vote together).

        Each key is the first answer of its group.
        """
        groups: list[str] = []
        keys: list[str | None] = []
        for a in answers:
            if a is None:
                keys.append(None)
                continue
            key = next((g for g in groups if answers_equal(g, a)), None)
            if key is None:
                groups.append(a)
                key = a
            keys.append(key)
        return keys

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Return whether the answer equals the reference symbolically."""
        return answer is not None and answers_equal(str(problem.data["answer"]), answer)
