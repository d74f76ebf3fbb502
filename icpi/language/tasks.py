"""Language tasks: Game of 24, creative writing and math questions.

Each task turns a problem into the task text the model answers (``s_task``), a reward
provider (a :class:`~icpi.core.rewards.RewardProvider`) whose feedback carries
``info["success"]`` and the per-line reward tags shown by ICRL prompting, and — for tasks
with a checkable final answer — :meth:`LanguageTask.final_answer`,
:meth:`LanguageTask.vote_keys` (what ME-ICPO's vote compares) and
:meth:`LanguageTask.is_correct`. :attr:`LanguageTask.reward_seen` states which reward the
method sees.

- :class:`Game24Task`: the standard split (ranks 901–1000), a puzzle file or seeded
  puzzles, classified by the reference solver; success is an exactly evaluated final
  equation, never shown; the reward seen comes from the model's own judge (steps and final
  equation, the paper's setting) or from exact checks.
- :class:`WritingTask`: four paragraphs ending in given sentences; reward = coherence 1–10
  from an LLM judge against a fixed reference passage.
- :class:`MathTask`: questions from a user JSONL file (``question``, ``answer``); reward 1
  when the ``<answer>`` equals the reference symbolically (``math-verify``).
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
)
from icpi.errors import ConfigError
from icpi.language import game24
from icpi.language.mathcheck import answers_equal

log = logging.getLogger(__name__)


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
    max_reward: float
    """Highest reward a response can earn (Reflexion reflects below it)."""

    @property
    def reward_seen(self) -> str:
        """Which reward the method sees, in one sentence (stated in ``config.json``)."""
        ...

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

    def vote_keys(self, answers: Sequence[str | None]) -> list[str | None]:
        """Return what ME-ICPO's majority vote compares for each answer (``None``: none)."""
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
Game of 24 rule: combine all four input numbers, each used exactly once, with + - * / \
into 24, one pair of numbers per step (three steps).
A player made this step: {step}
Numbers left after it: {left}
Judge whether the numbers left can still be combined into 24: sure = 3, likely = 1, \
impossible = 0.
Reply in this form: Answer: <score>
Answer:"""

ANSWER_JUDGE_PROMPT = """\
Game of 24 rule: combine all four input numbers, each used exactly once, with + - * / \
into 24.
Input: {numbers}
Proposed solution: {answer}
If it uses a number that is not in the input, leaves one out, or its arithmetic is wrong, \
the score is 0; otherwise the score is 10.
Reply in this form: Answer: <score>
Answer:"""

#: Game of 24 reward sources: step scores and the final-equation bonus.
StepJudge = Literal["llm", "rule"]
AnswerJudge = Literal["llm", "verifier"]

_SCORE = re.compile(r"answer\W{0,6}(?:is\s*)?([+-]?\d+)", re.IGNORECASE)
_WORD = re.compile(r"\b(not\s+|un)?(sure|likely|impossible|possible)\b", re.IGNORECASE)
_WORD_SCORES = {
    ("", "sure"): game24.SURE,
    ("neg", "sure"): game24.LIKELY,  # "not sure": unsure, i.e. likely at best
    ("", "likely"): game24.LIKELY,
    ("neg", "likely"): game24.IMPOSSIBLE,
    ("", "possible"): game24.LIKELY,
    ("neg", "possible"): game24.IMPOSSIBLE,
    ("", "impossible"): game24.IMPOSSIBLE,
    ("neg", "impossible"): game24.LIKELY,
}


def judge_step_verdict(text: str) -> float:
    """Read a step judge's verdict: ``Answer: <score>``, else its first verdict word.

    A score is mapped onto the 0 / 1 / 3 scale (≥ 3 sure, ≥ 1 likely, else impossible).
    Words are read with their negation: ``not sure`` and ``unsure`` are 1 (likely at
    best), ``unlikely``, ``not likely`` and ``not possible`` are 0.

    Args:
        text: The judge's answer.

    Returns:
        The step score (0 when nothing is recognised).
    """
    m = _SCORE.search(text or "")
    if m is None:
        m = re.fullmatch(r"\W*([+-]?\d+)\b.*", (text or "").strip(), re.DOTALL)
    if m is not None:
        n = int(m.group(1))
        return game24.SURE if n >= 3 else game24.LIKELY if n >= 1 else game24.IMPOSSIBLE
    w = _WORD.search(text or "")
    if w is None:
        return game24.IMPOSSIBLE
    return _WORD_SCORES[("neg" if w.group(1) else "", w.group(2).lower())]


def judge_answer_verdict(text: str) -> bool:
    """Read the answer judge's verdict: ``Answer: 10`` (valid) or ``Answer: 0``.

    Args:
        text: The judge's answer.

    Returns:
        Whether the judge accepts the equation.
    """
    m = _SCORE.search(text or "") or re.match(r"\W*([+-]?\d+)", (text or "").strip())
    if m is not None:
        return int(m.group(1)) >= game24.ANSWER_BONUS
    return bool(re.search(r"\b(?<!in)(valid|correct)\b", text or "", re.IGNORECASE)) and not (
        re.search(r"\b(not|in)\s*(valid|correct)", text or "", re.IGNORECASE)
    )


def describe_game24_reward(step_judge: StepJudge, answer_judge: AnswerJudge) -> str:
    """State which reward the method sees (written into ``config.json``).

    Args:
        step_judge: Source of the step scores.
        answer_judge: Source of the final-equation bonus.

    Returns:
        One sentence.
    """
    steps = {
        "llm": "the model's own judge scores each step sure/likely/impossible = 3/1/0",
        "rule": "an exact solver scores each step 3 (sure) or 0 (it knows the answer)",
    }[step_judge]
    bonus = {
        "llm": "the model's own judge gives 10 for a valid final equation",
        "verifier": "the exact verifier gives 10 for a valid final equation (the answer leaks)",
    }[answer_judge]
    return f"{steps}; {bonus}; success is checked by the exact verifier and never shown"


class Game24Reward:
    """Step rewards (3 steps, sure/likely/impossible = 3/1/0) plus 10 for a valid equation.

    The paper's setting is ``step_judge="llm", answer_judge="llm"``: the model's own judge
    gives every reward the method sees, and the exact verifier only reports
    ``info["success"]``. ``rule`` / ``verifier`` use exact checks instead (an oracle
    reward that leaks the answer).
    """

    def __init__(
        self,
        numbers: Sequence[int],
        step_judge: StepJudge = "llm",
        judge: Sampler | None = None,
        *,
        answer_judge: AnswerJudge = "llm",
    ) -> None:
        """Create the provider.

        Args:
            numbers: The puzzle.
            step_judge: ``llm`` (the judge model) or ``rule`` (exact solver).
            judge: Judge sampler (greedy decoding recommended); required for an LLM judge.
            answer_judge: ``llm`` (the judge model) or ``verifier`` (exact check).

        Raises:
            ValueError: If an LLM judge is asked for without a sampler.
        """
        if "llm" in (step_judge, answer_judge) and judge is None:
            raise ValueError("the LLM judge needs a judge sampler")
        self.numbers = tuple(numbers)
        self.step_judge = step_judge
        self.answer_judge = answer_judge
        self.judge = judge

    def _ask(self, prompt: str) -> str:
        assert self.judge is not None
        batch = self.judge.sample(prompt, 1, 0)
        return batch.texts[0] if batch.texts else ""

    def _llm_scores(self, parsed: game24.ParsedResponse) -> list[float]:
        scores = []
        for step in parsed.steps:
            left = " ".join(game24._fmt_step(x) for x in step.left)
            prompt = STEP_JUDGE_PROMPT.format(step=f"{step.lhs} = {step.result}", left=left)
            scores.append(judge_step_verdict(self._ask(prompt)))
        return scores

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Score a response.

        Args:
            action: The response text.
            state: Unused.

        Returns:
            The reward; ``info`` holds ``success`` (exact verifier), ``step_rewards``,
            ``answer_reward``, ``answer``, ``answer_error`` and ``line_rewards``
            (``[line, reward]`` pairs for the tags).
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
        if parsed.answer is None:
            accepted = False
        elif self.answer_judge == "llm":
            numbers = " ".join(map(str, self.numbers))
            prompt = ANSWER_JUDGE_PROMPT.format(numbers=numbers, answer=parsed.answer)
            accepted = judge_answer_verdict(self._ask(prompt))
        else:
            accepted = check.ok
        bonus = game24.ANSWER_BONUS if accepted else 0.0
        total = sum(steps) + bonus
        lines = [[s.line, r] for s, r in zip(parsed.steps, steps, strict=True)]
        if parsed.answer_line is not None:
            lines.append([parsed.answer_line, bonus])
        return Feedback(
            total,
            {
                "success": check.ok,
                "step_rewards": steps,
                "answer_reward": bonus,
                "answer": parsed.answer,
                "answer_error": check.error,
                "line_rewards": lines,
            },
        )


#: Game of 24 puzzle sets: the standard test split (ranks 901–1000), all 1362 ranked
#: puzzles, or puzzles drawn at random (solvable, unsolvable or either).
Split = Literal["tot-test", "all", "random", "random-unsolvable", "random-any"]
SPLITS = ("tot-test", "all", "random", "random-unsolvable", "random-any")


@dataclass
class Game24Task:
    """Game of 24 on the standard split, a puzzle file, or generated puzzles."""

    step_judge: StepJudge = "llm"
    """Step rewards: the model's own judge (the paper) or the exact solver."""
    answer_judge: AnswerJudge = "llm"
    """Final-equation bonus: the model's own judge (the paper) or the exact verifier."""
    split: Split = "tot-test"
    """``tot-test``: ranks 901–1000 (Tree of Thoughts' and the ICRL paper's 100 test
    puzzles); ``all``: every puzzle in rank order; ``random*``: seeded draws."""
    puzzles_file: str | None = None
    """CSV or JSONL puzzle file (:func:`~icpi.language.game24.load_puzzles`); default: the
    1362 solvable puzzles in the public rank order."""
    name: str = "game24"
    """Task id."""
    has_answers: bool = True
    """Final answers are expressions."""
    max_reward: float = 3 * game24.SURE + game24.ANSWER_BONUS
    """Highest reward of a response (three sure steps and a valid equation)."""
    stop: tuple[str, ...] = ("\nInput:", "\nExample", "<attempt>", "</attempt>")
    """A completion that starts another puzzle or attempt is cut there."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"unknown Game of 24 split {self.split!r} (choose from {SPLITS})")
        if self.puzzles_file is not None and self.split.startswith("random"):
            raise ConfigError("a puzzle file is split by rank: use --split tot-test or all")

    @property
    def reward_seen(self) -> str:
        """Which reward the method sees (stated in ``config.json``)."""
        return describe_game24_reward(self.step_judge, self.answer_judge)

    def ranked(self) -> list[game24.RankedPuzzle]:
        """The ranked puzzles of the file (or the public ranking), easiest first."""
        if self.puzzles_file is not None:
            return game24.load_puzzles(self.puzzles_file)
        return [game24.RankedPuzzle(i + 1, p) for i, p in enumerate(game24.standard_ranking())]

    def problems(self, n: int, seed: int) -> list[Problem]:
        """Return the first ``n`` puzzles of the split (in rank order), or ``n`` drawn ones.

        Args:
            n: Number of puzzles.
            seed: Generator seed (``random*`` splits only).

        Returns:
            Problems with ``numbers``, ``solvable``, ``rank`` and ``solution`` (never shown).

        Raises:
            ValueError: If the split holds no puzzle.
        """
        if self.split.startswith("random"):
            which = {"random": True, "random-unsolvable": False, "random-any": None}[self.split]
            drawn = game24.generate_puzzles(
                n, seed, solvable=which, exclude=[e[0] for e in GAME24_EXAMPLES]
            )
            rows: list[tuple[int | None, tuple[int, ...]]] = [(None, p.numbers) for p in drawn]
        else:
            ranked = self.ranked()
            if self.split == "tot-test":
                lo, hi = game24.TOT_TEST_RANKS
                ranked = [r for r in ranked if lo <= r.rank <= hi]
                if not ranked:
                    raise ConfigError(f"no puzzle with a rank in {lo}–{hi} (use --split all)")
            rows = [(r.rank, r.numbers) for r in ranked[:n]]
            if len(rows) < n:
                log.warning("the %s split holds only %d puzzles (asked for %d)",
                            self.split, len(rows), n)  # fmt: skip
        out = []
        for i, (rank, numbers) in enumerate(rows):
            p = game24.Puzzle.of(numbers)
            data = {"numbers": list(p.numbers), "solvable": p.solvable, "solution": p.solution}
            out.append(Problem(index=i, id=f"24:{p.text}", data=data | {"rank": rank}))
        return out

    def describe(self, problem: Problem) -> str:
        """Return the task text with the puzzle's numbers."""
        return GAME24_TASK.format(numbers=" ".join(map(str, problem.data["numbers"])))

    def reward(self, problem: Problem, judge: Sampler | None) -> RewardProvider:
        """Return the puzzle's step reward."""
        return Game24Reward(
            problem.data["numbers"], self.step_judge, judge, answer_judge=self.answer_judge
        )

    def final_answer(self, text: str) -> str | None:
        """Return the answer expression without spaces."""
        return game24.final_answer(text)

    def vote_keys(self, answers: Sequence[str | None]) -> list[str | None]:
        """Vote keys: the value each expression reaches with the numbers it uses."""
        return [game24.answer_key(a) for a in answers]

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
    max_reward: float = 10.0
    """Highest coherence score."""
    stop: tuple[str, ...] = ("<attempt>", "</attempt>")
    """A completion that starts another attempt is cut there."""
    reward_seen: str = (
        "the model's own judge scores coherence 1-10 against a fixed reference passage; "
        "success is a score at or above the threshold"
    )
    """Which reward the method sees."""

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

    def vote_keys(self, answers: Sequence[str | None]) -> list[str | None]:
        """Passages have no answers to vote on."""
        return [None for _ in answers]

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Passages have no final answer to check."""
        return False


# --------------------------------------------------------------------------- math
MATH_TASK = """\
Solve the following problem. Reason step by step, then give only the final answer \
between <answer> and </answer>.
Problem: {question}"""

_ANSWER_PARSER = TextAnswerParser()


def load_math_problems(path: Path | str, answer_key: str = "answer") -> list[dict[str, str]]:
    """Read math questions (or solved examples) from a JSONL file.

    Args:
        path: One JSON object per line with ``question`` and ``answer`` (extra keys kept).
        answer_key: The second required field (``solution`` for expert demonstrations).

    Returns:
        The rows, in file order.

    Raises:
        ValueError: If a line is not JSON or lacks a field.
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
            action: The response text.
            state: Unused.

        Returns:
            The reward; ``info`` holds ``success`` and the ``answer`` read.
        """
        r = _ANSWER_PARSER(str(action or ""))
        ok = bool(r.ok and answers_equal(self.answer, str(r.value)))
        return Feedback(1.0 if ok else 0.0, {"success": ok, "answer": r.value})


@dataclass
class MathTask:
    """Math questions from a JSONL file, answers compared symbolically (``math-verify``)."""

    path: str
    """JSONL file with ``question`` and ``answer`` per line."""
    name: str = "math"
    """Task id."""
    has_answers: bool = True
    """Final answers are ``<answer>`` contents."""
    max_reward: float = 1.0
    """A right answer."""
    stop: tuple[str, ...] = ("<attempt>", "</attempt>", "\nProblem:")
    """A completion that starts another attempt or problem is cut there."""
    reward_seen: str = (
        "1 when the <answer> equals the reference symbolically (math-verify), else 0; "
        "the same check gives success"
    )
    """Which reward the method sees."""

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
        """Return the symbolic-match reward."""
        return MathReward(problem.data["answer"])

    def final_answer(self, text: str) -> str | None:
        """Return the normalised ``<answer>`` (or boxed) content."""
        r = _ANSWER_PARSER(text)
        return str(r.value) if r.ok else None

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


def make_task(
    name: str,
    *,
    step_judge: StepJudge = "llm",
    answer_judge: AnswerJudge = "llm",
    split: Split = "tot-test",
    puzzles_file: str | None = None,
    math_file: str | None = None,
    threshold: float = 7.0,
) -> LanguageTask:
    """Build a task by name.

    Args:
        name: ``game24``, ``writing`` or ``math``.
        step_judge: Game of 24 step rewards: ``llm`` or ``rule``.
        answer_judge: Game of 24 final-equation bonus: ``llm`` or ``verifier``.
        split: Game of 24 puzzle set.
        puzzles_file: Game of 24 puzzle file (CSV or JSONL).
        math_file: JSONL file of the math task.
        threshold: Writing coherence counted as a success.

    Returns:
        The task.

    Raises:
        ValueError: On an unknown task or a math task without a file.
    """
    if name == "game24":
        return Game24Task(
            step_judge=step_judge, answer_judge=answer_judge, split=split,
            puzzles_file=puzzles_file,
        )  # fmt: skip
    if name == "writing":
        return WritingTask(threshold=threshold)
    if name == "math":
        if not math_file:
            raise ConfigError("the math task needs --math-file (JSONL with question, answer)")
        return MathTask(math_file)
    raise ConfigError(f"unknown language task {name!r}")
