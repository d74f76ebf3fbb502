"""Language tasks: Game of 24, creative writing and math questions.

Each task turns a problem into the task text the model answers (``s_task``), a reward
provider (a :class:`~icpi.core.rewards.RewardProvider`) whose feedback carries
``info["success"]`` and the per-line reward tags shown by ICRL prompting, and — for tasks
with a checkable final answer — :meth:`LanguageTask.final_answer` (the key ME-ICPO votes
on) and :meth:`LanguageTask.is_correct`.

- :class:`Game24Task`: seeded puzzles classified by the reference solver; success is an
  exactly evaluated final equation; step rewards from the rule-based checker or an LLM judge.
- :class:`WritingTask`: four paragraphs ending in given sentences; reward = coherence 1–10
  from an LLM judge against a fixed reference passage.
- :class:`MathTask`: questions from a user JSONL file (``question``, ``answer``); reward 1
  for an exact (normalised) ``<answer>`` match.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from icpi.core import (
    Feedback,
    LLMJudgeReward,
    LoopState,
    RewardProvider,
    Sampler,
    TextAnswerParser,
    normalise_answer,
)
from icpi.language import game24

log = logging.getLogger(__name__)

StepJudge = Literal["rule", "llm"]


@dataclass(frozen=True)
class Problem:
    """One problem of a task."""

    index: int
    """Position in the run's problem list."""
    id: str
    """Stable identifier (``24:1 4 8 8``, ``math:17``, ``writing:3``)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Task-specific content (numbers, question and answer, sentences)."""


class LanguageTask(Protocol):
    """What the improvers need from a task."""

    name: str
    """Task id (``game24``, ``writing``, ``math``)."""
    has_answers: bool
    """Whether responses end in a checkable final answer (ME-ICPO needs one)."""
    stop: tuple[str, ...]
    """Stop sequences of a response (they end a plain completion that runs on)."""

    def problems(self, n: int, seed: int) -> list[Problem]:
        """Return the first ``n`` problems for a seed."""
        ...

    def describe(self, problem: Problem) -> str:
        """Return the task text the model answers."""
        ...

    def reward(self, problem: Problem, judge: Sampler | None) -> RewardProvider:
        """Return the reward provider of one problem (``judge`` for LLM-judged rewards)."""
        ...

    def final_answer(self, text: str) -> str | None:
        """Return the normalised final answer of a response, if any."""
        ...

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Return whether a final answer solves the problem."""
        ...


def reward_tag(value: float) -> str:
    """Write a reward tag as ICRL prompts show it.

    Args:
        value: The reward.

    Returns:
        ``<Reward: 3.00>``.
    """
    return f"<Reward: {value:.2f}>"


# --------------------------------------------------------------------------- Game of 24
GAME24_TASK = """\
Game of 24: combine the four input numbers with + - * / (each number used exactly once) \
so that the result is 24. Work in three steps; after each step list the numbers left. \
Then write the whole expression.

Example
Input: 2 3 4 6
Step1: 3 - 2 = 1 (left: 1 4 6)
Step2: 4 * 6 = 24 (left: 1 24)
Step3: 24 * 1 = 24 (left: 24)
Answer: (4 * 6) * (3 - 2) = 24

Example
Input: 3 4 5 7
Step1: 7 - 5 = 2 (left: 2 3 4)
Step2: 3 * 4 = 12 (left: 2 12)
Step3: 12 * 2 = 24 (left: 24)
Answer: (3 * 4) * (7 - 5) = 24

Reply in the same form: three Step lines, then one Answer line, even if it does not \
reach 24. Do not try again after the Answer line.
Input: {numbers}"""

#: Examples of :data:`GAME24_TASK` (numbers, answer expression, value), checked by tests.
GAME24_EXAMPLES = (((2, 3, 4, 6), "(4 * 6) * (3 - 2)", 24), ((3, 4, 5, 7), "(3 * 4) * (7 - 5)", 24))

STEP_JUDGE_PROMPT = """\
Game of 24: four numbers must be combined with + - * / into 24, each used once.
A player made this step: {step}
Numbers left after it: {left}
Can the numbers left still be combined into 24? Reply with one word: sure, likely or \
impossible.
Verdict:"""

_VERDICTS = {"sure": game24.SURE, "likely": game24.LIKELY, "impossible": game24.IMPOSSIBLE}


def judge_step_verdict(text: str) -> float:
    """Read a step judge's verdict (first of sure / likely / impossible, or 3 / 1 / 0).

    Args:
        text: The judge's answer.

    Returns:
        The step score (0 when nothing is recognised).
    """
    m = re.search(r"\b(sure|likely|impossible|3|1|0)\b", text.lower())
    if m is None:
        return game24.IMPOSSIBLE
    word = m.group(1)
    return _VERDICTS.get(word, float(word) if word in ("3", "1", "0") else game24.IMPOSSIBLE)


class Game24Reward:
    """Step rewards (3 steps, sure/likely/impossible = 3/1/0) plus 10 for a valid equation."""

    def __init__(
        self, numbers: Sequence[int], step_judge: StepJudge = "rule", judge: Sampler | None = None
    ) -> None:
        """Create the provider.

        Args:
            numbers: The puzzle.
            step_judge: ``rule`` (exact solver) or ``llm`` (the judge model).
            judge: Judge sampler (greedy decoding recommended); required for ``llm``.

        Raises:
            ValueError: If the LLM judge is asked for without a sampler.
        """
        if step_judge == "llm" and judge is None:
            raise ValueError("the LLM step judge needs a judge sampler")
        self.numbers = tuple(numbers)
        self.step_judge = step_judge
        self.judge = judge

    def _llm_scores(self, parsed: game24.ParsedResponse) -> list[float]:
        assert self.judge is not None
        scores = []
        for step in parsed.steps:
            left = " ".join(str(x) for x in step.left)
            prompt = STEP_JUDGE_PROMPT.format(step=f"{step.lhs} = {step.result}", left=left)
            batch = self.judge.sample(prompt, 1, 0)
            scores.append(judge_step_verdict(batch.texts[0] if batch.texts else ""))
        return scores

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Score a response.

        Args:
            action: The response text.
            state: Unused.

        Returns:
            The reward; ``info`` holds ``success``, ``step_rewards``, ``answer``,
            ``answer_error`` and ``line_rewards`` (``[line, reward]`` pairs for the tags).
        """
        text = str(action or "")
        parsed = game24.parse_response(text)
        parsed = game24.ParsedResponse(
            lines=parsed.lines,
            steps=parsed.steps[:3],
            answer=parsed.answer,
            answer_line=parsed.answer_line,
        )
        if self.step_judge == "llm":
            steps = self._llm_scores(parsed)
        else:
            steps = game24.rule_step_rewards(parsed, self.numbers)
        check = game24.check_answer(parsed.answer, self.numbers)
        bonus = game24.ANSWER_BONUS if check.ok else 0.0
        total = sum(steps) + bonus
        lines = [[s.line, r] for s, r in zip(parsed.steps, steps, strict=True)]
        if parsed.answer_line is not None:
            lines.append([parsed.answer_line, bonus])
        return Feedback(
            total,
            {
                "success": check.ok,
                "step_rewards": steps,
                "answer": parsed.answer,
                "answer_error": check.error,
                "line_rewards": lines,
            },
        )


@dataclass
class Game24Task:
    """Game of 24 on generated puzzles (solvable ones unless asked otherwise)."""

    step_judge: StepJudge = "rule"
    """Step rewards from the rule-based checker or an LLM judge."""
    kind: Literal["solvable", "unsolvable", "any"] = "solvable"
    """Which generated puzzles to use."""
    name: str = "game24"
    """Task id."""
    has_answers: bool = True
    """Final answers are expressions."""
    stop: tuple[str, ...] = ("\nInput:", "\nExample", "<attempt>", "</attempt>")
    """A completion that starts another puzzle or attempt is cut there."""

    def problems(self, n: int, seed: int) -> list[Problem]:
        """Generate puzzles with the reference solver.

        Args:
            n: Number of puzzles.
            seed: Generator seed.

        Returns:
            Problems with ``numbers``, ``solvable`` (and ``solution``, never shown).
        """
        which = {"solvable": True, "unsolvable": False, "any": None}[self.kind]
        return [
            Problem(
                index=i,
                id=f"24:{p.text}",
                data={"numbers": list(p.numbers), "solvable": p.solvable, "solution": p.solution},
            )
            for i, p in enumerate(
                game24.generate_puzzles(
                    n, seed, solvable=which, exclude=[e[0] for e in GAME24_EXAMPLES]
                )
            )
        ]

    def describe(self, problem: Problem) -> str:
        """Return the task text with the puzzle's numbers."""
        return GAME24_TASK.format(numbers=" ".join(map(str, problem.data["numbers"])))

    def reward(self, problem: Problem, judge: Sampler | None) -> RewardProvider:
        """Return the puzzle's step reward."""
        return Game24Reward(problem.data["numbers"], self.step_judge, judge)

    def final_answer(self, text: str) -> str | None:
        """Return the answer expression without spaces."""
        return game24.final_answer(text)

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Return whether the expression solves the puzzle (exact arithmetic)."""
        return game24.check_answer(answer, problem.data["numbers"]).ok


# --------------------------------------------------------------------------- writing
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

WRITING_TASK = """\
Write a coherent passage of 4 short paragraphs. Paragraph 1 must end with this \
sentence: {s1}
Paragraph 2 must end with: {s2}
Paragraph 3 must end with: {s3}
Paragraph 4 must end with: {s4}
First make a short plan, then write. Reply in this form:
Plan: <your plan>
Passage: <your passage>"""

#: Reference passage the coherence judge compares against (written for this package).
WRITING_REFERENCE = (
    "Early in the morning the harbour is quiet. Fishing boats rock gently against the pier "
    "while gulls circle above, waiting for the first catch. A baker opens her shutters and "
    "the smell of warm bread drifts down to the water. Slowly the town wakes: doors open, "
    "bicycles rattle over cobblestones, and neighbours trade greetings. By the time the sun "
    "clears the hills, the harbour is busy again, and the calm of dawn lives on only in the "
    "memory of those who were up to see it."
)

WRITING_JUDGE = """\
You grade how coherent a text is, compared with a reference text. Score from 1 to 10: \
1 means far less coherent than the reference, 5 equally coherent, 10 far more coherent. \
Be strict; give a high score only to a text clearly better than the reference.

Reference:
{reference}

Text:
{action}

Reply exactly as: Coherence score: <integer 1-10>
Coherence score:"""


class WritingReward:
    """Coherence 1–10 from an LLM judge; success when it reaches a threshold."""

    def __init__(self, judge: Sampler, threshold: float = 7.0) -> None:
        """Create the provider.

        Args:
            judge: Judge sampler (greedy decoding recommended).
            threshold: Score counted as a success.
        """
        self.judge = LLMJudgeReward(judge, WRITING_JUDGE, low=1.0, high=10.0)
        self.threshold = threshold

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Ask the judge for a coherence score.

        Args:
            action: The passage.
            state: The loop state (its task carries ``reference``).

        Returns:
            The score; ``info`` holds ``success`` and the judge's answer.
        """
        fb = self.judge(str(action or ""), state)
        return Feedback(fb.reward, {**fb.info, "success": fb.reward >= self.threshold})


@dataclass
class WritingTask:
    """Creative writing: four paragraphs ending with given sentences."""

    threshold: float = 7.0
    """Coherence score counted as a success."""
    name: str = "writing"
    """Task id."""
    has_answers: bool = False
    """No checkable final answer (ME-ICPO does not apply)."""
    stop: tuple[str, ...] = ("<attempt>", "</attempt>")
    """A completion that starts another attempt is cut there."""

    def problems(self, n: int, seed: int) -> list[Problem]:
        """Draw sentence quadruples with a seeded generator.

        Args:
            n: Number of problems.
            seed: Generator seed.

        Returns:
            Problems with ``sentences`` and the judge's ``reference``.
        """
        rng = random.Random(seed)
        return [
            Problem(
                index=i,
                id=f"writing:{seed}:{i}",
                data={
                    "sentences": rng.sample(WRITING_SENTENCES, 4),
                    "reference": WRITING_REFERENCE,
                },
            )
            for i in range(n)
        ]

    def describe(self, problem: Problem) -> str:
        """Return the writing prompt."""
        s = problem.data["sentences"]
        return WRITING_TASK.format(s1=s[0], s2=s[1], s3=s[2], s4=s[3])

    def reward(self, problem: Problem, judge: Sampler | None) -> RewardProvider:
        """Return the coherence judge.

        Raises:
            ValueError: Without a judge sampler.
        """
        if judge is None:
            raise ValueError("the writing task needs a judge sampler")
        return WritingReward(judge, self.threshold)

    def final_answer(self, text: str) -> str | None:
        """Passages have no final answer."""
        return None

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Passages have no final answer to check."""
        return False


# --------------------------------------------------------------------------- math
MATH_TASK = """\
Solve the following problem. Reason step by step, then give only the final answer \
between <answer> and </answer>.
Problem: {question}"""

_ANSWER_PARSER = TextAnswerParser()


def load_math_problems(path: Path | str) -> list[dict[str, str]]:
    """Read math questions from a JSONL file.

    Args:
        path: One JSON object per line with ``question`` and ``answer`` (extra keys kept).

    Returns:
        The rows, in file order.

    Raises:
        ValueError: If a line is not JSON or lacks a field.
    """
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from exc
        if not isinstance(row, Mapping) or "question" not in row or "answer" not in row:
            raise ValueError(f"{path}:{lineno}: needs 'question' and 'answer'")
        rows.append({**row, "question": str(row["question"]), "answer": str(row["answer"])})
    return rows


class MathReward:
    """Reward 1 for an exact (normalised) final-answer match, else 0."""

    def __init__(self, answer: str) -> None:
        """Create the provider.

        Args:
            answer: The reference answer.
        """
        self.answer = normalise_answer(answer)

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Check a response's final answer.

        Args:
            action: The response text.
            state: Unused.

        Returns:
            The reward; ``info`` holds ``success`` and the ``answer`` read.
        """
        r = _ANSWER_PARSER(str(action or ""))
        ok = bool(r.ok and r.value == self.answer)
        return Feedback(1.0 if ok else 0.0, {"success": ok, "answer": r.value})


@dataclass
class MathTask:
    """Math questions from a JSONL file, checked by exact match."""

    path: str
    """JSONL file with ``question`` and ``answer`` per line."""
    name: str = "math"
    """Task id."""
    has_answers: bool = True
    """Final answers are ``<answer>`` contents."""
    stop: tuple[str, ...] = ("<attempt>", "</attempt>", "\nProblem:")
    """A completion that starts another attempt or problem is cut there."""

    def problems(self, n: int, seed: int) -> list[Problem]:
        """Return the first ``n`` questions of the file (the seed is unused).

        Args:
            n: Number of questions.
            seed: Unused (file order is kept).

        Returns:
            Problems with ``question`` and ``answer``.
        """
        rows = load_math_problems(self.path)[:n]
        if len(rows) < n:
            log.warning("%s holds only %d questions (asked for %d)", self.path, len(rows), n)
        return [Problem(index=i, id=f"math:{i}", data=row) for i, row in enumerate(rows)]

    def describe(self, problem: Problem) -> str:
        """Return the question with the answer format."""
        return MATH_TASK.format(question=problem.data["question"])

    def reward(self, problem: Problem, judge: Sampler | None) -> RewardProvider:
        """Return the exact-match reward."""
        return MathReward(problem.data["answer"])

    def final_answer(self, text: str) -> str | None:
        """Return the normalised ``<answer>`` (or boxed) content."""
        r = _ANSWER_PARSER(text)
        return str(r.value) if r.ok else None

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Return whether the answer equals the reference after normalisation."""
        return answer is not None and answer == normalise_answer(problem.data["answer"])


def make_task(
    name: str,
    *,
    step_judge: StepJudge = "rule",
    puzzles: Literal["solvable", "unsolvable", "any"] = "solvable",
    math_file: str | None = None,
    threshold: float = 7.0,
) -> LanguageTask:
    """Build a task by name.

    Args:
        name: ``game24``, ``writing`` or ``math``.
        step_judge: Game of 24 step rewards: ``rule`` or ``llm``.
        puzzles: Game of 24 puzzles used.
        math_file: JSONL file of the math task.
        threshold: Writing coherence counted as a success.

    Returns:
        The task.

    Raises:
        ValueError: On an unknown task or a math task without a file.
    """
    if name == "game24":
        return Game24Task(step_judge=step_judge, kind=puzzles)
    if name == "writing":
        return WritingTask(threshold=threshold)
    if name == "math":
        if not math_file:
            raise ValueError("the math task needs --math-file (JSONL with question, answer)")
        return MathTask(math_file)
    raise ValueError(f"unknown language task {name!r}")
