"""Game of 24 as a language task: the standard split, the paper's judge reward, exact success.

Puzzles come from the standard ranking (Tree of Thoughts' ``24.csv`` order; the test
split is ranks 901–1000), a puzzle file, or seeded draws, each classified by the reference
solver (:mod:`icpi.language.game24`). Success is an exactly evaluated final equation,
never shown. The reward the method sees comes from the model's own judge — each of three
steps sure/likely/impossible = 3/1/0 and 10 for a valid final equation, the paper's
setting — or from exact checks (``step_judge="rule"``, ``answer_judge="verifier"``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from icpi.core import Feedback, LoopState, RewardProvider, Sampler
from icpi.errors import ConfigError
from icpi.language import game24
from icpi.language.budget import shorten
from icpi.language.tasks.base import LanguageTask, Problem, TaskSettings, read_verdict
from icpi.language.tasks.registry import register

log = logging.getLogger(__name__)

#: Game of 24 reward sources: step scores and the final-equation bonus.
StepJudge = Literal["llm", "rule"]
AnswerJudge = Literal["llm", "verifier"]
#: Puzzle sets: the standard test split (ranks 901–1000), all 1362 ranked puzzles, or
#: puzzles drawn at random (solvable, unsolvable or either).
Split = Literal["tot-test", "all", "random", "random-unsolvable", "random-any"]
#: Longest answer shown to the answer judge, characters (a valid expression is short).
JUDGED_ANSWER_CHARS = 300

ANSWER_JUDGE_PROMPT = """\
Game of 24 rule: combine all four input numbers, each used exactly once, with + - * / \
into 24.
Input: {numbers}
Proposed solution: {answer}
Check it: it must use each input number exactly once and no other number, and its \
arithmetic must be right. Reason briefly, then end with your verdict on its own line in \
this form: Answer: 10 if the solution is valid, Answer: 0 if it is not.
Reasoning:"""

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


def judge_step_verdict(text: str, prompt: str = "") -> float:
    """Read a step judge's verdict: its score (see :func:`read_verdict`), else its last word.

    A score is mapped onto the 0 / 1 / 3 scale (≥ 3 sure, ≥ 1 likely, else impossible).
    Words are read with their negation: ``not sure`` and ``unsure`` are 1 (likely at
    best), ``unlikely``, ``not likely`` and ``not possible`` are 0.

    Args:
        text: The judge's answer.
        prompt: The judge's prompt (see :func:`read_verdict`).

    Returns:
        The step score (0 when nothing is recognised).
    """
    n = read_verdict(text, prompt)
    if n is not None:
        return game24.SURE if n >= 3 else game24.LIKELY if n >= 1 else game24.IMPOSSIBLE
    words = list(_WORD.finditer(text or ""))
    if not words:
        return game24.IMPOSSIBLE
    w = words[-1]
    return _WORD_SCORES[("neg" if w.group(1) else "", w.group(2).lower())]


def judge_answer_verdict(text: str, prompt: str = "") -> bool:
    """Read the answer judge's verdict: a score of 10 is valid (see :func:`read_verdict`).

    Args:
        text: The judge's answer.
        prompt: The judge's prompt.

    Returns:
        Whether the judge accepts the equation.
    """
    n = read_verdict(text, prompt)
    if n is not None:
        return n >= game24.ANSWER_BONUS
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
        step_prompt: str | None = None,
    ) -> None:
        """Create the provider.

        Args:
            numbers: The puzzle.
            step_judge: ``llm`` (the judge model) or ``rule`` (exact solver).
            judge: Judge sampler (greedy decoding recommended); required for an LLM judge.
            answer_judge: ``llm`` (the judge model) or ``verifier`` (exact check).
            step_prompt: The step judge's prompt (``{step}``, ``{left}``); default the
                package's.

        Raises:
            ValueError: If an LLM judge is asked for without a sampler.
        """
        from icpi.language.prompts import PACKAGE

        if "llm" in (step_judge, answer_judge) and judge is None:
            raise ValueError("the LLM judge needs a judge sampler")
        self.numbers = tuple(numbers)
        self.step_judge = step_judge
        self.answer_judge = answer_judge
        self.judge = judge
        self.step_prompt = step_prompt or PACKAGE.step_judge

    def _ask(self, prompt: str) -> str:
        assert self.judge is not None
        batch = self.judge.sample(prompt, 1, 0)
        return batch.texts[0] if batch.texts else ""

    def _llm_scores(self, parsed: game24.ParsedResponse) -> tuple[list[float], list[str]]:
        scores, answers = [], []
        for step in parsed.steps:
            left = " ".join(game24._fmt_step(x) for x in step.left)
            prompt = self.step_prompt.format(step=step.text, left=left)
            answer = self._ask(prompt)
            scores.append(judge_step_verdict(answer, prompt))
            answers.append(answer)
        return scores, answers

    def __call__(self, action: Any, state: LoopState) -> Feedback:
        """Score a response.

        Args:
            action: The response text.
            state: Unused.

        Returns:
            The reward; ``info`` holds ``success`` (exact verifier), ``step_rewards``,
            ``answer_reward``, ``answer``, ``answer_error``, ``judge_answers`` and
            ``reward_marks`` (``[offset, reward]`` pairs: where in the response each tag
            goes).
        """
        text = str(action or "")
        parsed = game24.parse_response(text)
        steps3 = parsed.steps[:3]
        parsed = game24.ParsedResponse(
            text=text, steps=steps3, answer=parsed.answer, answer_span=parsed.answer_span
        )
        judged: list[str] = []
        if self.step_judge == "llm":
            steps, judged = self._llm_scores(parsed)
        else:
            steps = game24.rule_step_rewards(parsed, self.numbers)
        check = game24.check_answer(parsed.answer, self.numbers)
        if parsed.answer is None:
            accepted = False
        elif self.answer_judge == "llm":
            numbers = " ".join(map(str, self.numbers))
            answer = shorten(parsed.answer, JUDGED_ANSWER_CHARS)
            prompt = ANSWER_JUDGE_PROMPT.format(numbers=numbers, answer=answer)
            reply = self._ask(prompt)
            judged.append(reply)
            accepted = judge_answer_verdict(reply, prompt)
        else:
            accepted = check.ok
        bonus = game24.ANSWER_BONUS if accepted else 0.0
        total = sum(steps) + bonus
        marks = [[s.end, r] for s, r in zip(parsed.steps, steps, strict=True)]
        if parsed.answer_span is not None:
            marks.append([parsed.answer_span[1], bonus])
        return Feedback(
            total,
            {
                "success": check.ok,
                "step_rewards": steps,
                "answer_reward": bonus,
                "answer": parsed.answer,
                "answer_error": check.error,
                "judge_answers": judged,
                "reward_marks": marks,
            },
        )


@dataclass(frozen=True)
class Game24Settings(TaskSettings):
    """Settings of Game of 24."""

    step_judge: StepJudge = "llm"
    """Step rewards: the model's own judge (the paper) or the exact solver."""
    answer_judge: AnswerJudge = "llm"
    """Final-equation bonus: the model's own judge (the paper) or the exact verifier (which
    leaks the answer). Success is always the exact verifier's."""
    split: Split = "tot-test"
    """Puzzles: ``tot-test`` (ranks 901–1000, positions 900–999: Tree of Thoughts' and the
    ICRL paper's test puzzles), ``all`` (every ranked puzzle), ``random``,
    ``random-unsolvable`` or ``random-any`` (seeded draws)."""
    puzzles_file: str | None = None
    """CSV or JSONL puzzle file (Tree of Thoughts' ``24.csv`` reads as is); default: the
    1362 solvable puzzles in the public rank order."""

    def __post_init__(self) -> None:
        if self.puzzles_file is not None and self.split.startswith("random"):
            raise ConfigError("a puzzle file is split by rank: use --split tot-test or all")


@register
class Game24Task(LanguageTask[Game24Settings]):
    """Game of 24 on the standard split, a puzzle file, or generated puzzles."""

    name = "game24"
    summary = "Game of 24: four numbers, + - * /, reach 24 (standard split: ranks 901–1000)"
    Settings = Game24Settings
    has_answers = True
    max_reward = 3 * game24.SURE + game24.ANSWER_BONUS
    stop = ("\nInput:", "\nExample", "<attempt>", "</attempt>")

    @property
    def reward_seen(self) -> str:
        """Which reward the method sees (stated in ``config.json``)."""
        s = self.settings
        return describe_game24_reward(s.step_judge, s.answer_judge)

    def reward_without_judge(self) -> str | None:
        """A method that uses no reward records the exact checks (no judge call)."""
        return (
            "none: the method uses no reward; records hold the exact checks (solver steps,"
            " verifier bonus) and no judge is asked"
        )

    def ranked(self) -> list[game24.RankedPuzzle]:
        """The ranked puzzles of the file (or the public ranking), easiest first."""
        if self.settings.puzzles_file is not None:
            return game24.load_puzzles(self.settings.puzzles_file)
        return [game24.RankedPuzzle(i + 1, p) for i, p in enumerate(game24.standard_ranking())]

    def _pool(self) -> list[tuple[int, game24.RankedPuzzle]]:
        ranked = list(enumerate(self.ranked()))
        if self.settings.split == "tot-test":
            lo, hi = game24.TOT_TEST_RANKS
            ranked = [(i, r) for i, r in ranked if lo <= r.rank <= hi]
            if not ranked:
                raise ConfigError(f"no puzzle with a rank in {lo}–{hi} (use --split all)")
        return ranked

    def default_start(self) -> int:
        """Position of the split's first puzzle (900 on the standard test split)."""
        if self.settings.split.startswith("random"):
            return 0
        return self._pool()[0][0]

    def problems(self, seed: int, start: int, count: int) -> list[Problem]:
        """Return ``count`` puzzles from position ``start``: of the ranking, or drawn.

        Positions count as Tree of Thoughts' ``--task_start_index`` does: the row of the
        ranking, from 0 (rank − 1); a random split's positions are the order of its draws.

        Args:
            seed: Generator seed (``random*`` splits only).
            start: Position of the first puzzle.
            count: Number of puzzles.

        Returns:
            Problems with ``numbers``, ``solvable``, ``rank``, ``position`` and ``solution``
            (never shown).

        Raises:
            ConfigError: If ``start`` lies outside the split.
        """
        split = self.settings.split
        rows: Sequence[tuple[int, int | None, tuple[int, ...]]]
        if split.startswith("random"):
            which = {"random": True, "random-unsolvable": False, "random-any": None}[split]
            drawn = game24.generate_puzzles(
                start + count, seed, solvable=which, exclude=self.prompts.game24_demos
            )
            rows = [(start + i, None, p.numbers) for i, p in enumerate(drawn[start:])]
        else:
            pool = self._pool()
            first, last = pool[0][0], pool[-1][0]
            if split == "tot-test" and not first <= start <= last:
                raise ConfigError(
                    f"--start {start} lies outside the tot-test split (positions {first}–"
                    f"{last}); use --split all to index the whole ranking"
                )
            rows = [(i, int(r.rank), r.numbers) for i, r in pool if i >= start][:count]
            if len(rows) < count:
                log.warning("the %s split holds only %d puzzles from position %d (asked for"
                            " %d)", split, len(rows), start, count)  # fmt: skip
        out = []
        for k, (position, rank, numbers) in enumerate(rows):
            p = game24.Puzzle.of(numbers)
            data = {
                "numbers": list(p.numbers),
                "solvable": p.solvable,
                "solution": p.solution,
                "rank": rank,
                "position": position,
            }
            out.append(Problem(index=k, id=f"24:{p.text}", data=data))
        return out

    def describe(self, problem: Problem) -> str:
        """Return the task text with the puzzle's numbers."""
        return self.prompts.game24_task.format(numbers=" ".join(map(str, problem.data["numbers"])))

    def reward(
        self, problem: Problem, judge: Sampler | None, *, judged: bool = True
    ) -> RewardProvider:
        """Return the puzzle's step reward (exact checks only when ``judged`` is False)."""
        s = self.settings
        step, answer = (s.step_judge, s.answer_judge) if judged else ("rule", "verifier")
        return Game24Reward(
            problem.data["numbers"], step, judge, answer_judge=answer,
            step_prompt=self.prompts.step_judge,
        )  # fmt: skip

    def final_answer(self, text: str) -> str | None:
        """Return the answer expression without spaces."""
        return game24.final_answer(text)

    def answer_span(self, text: str) -> tuple[int, int] | None:
        """Return where the answer line stands."""
        return game24.parse_response(text).answer_span

    def vote_keys(self, answers: Sequence[str | None]) -> list[str | None]:
        """Vote keys: the value each expression reaches with the numbers it uses."""
        return [game24.answer_key(a) for a in answers]

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Return whether the expression solves the puzzle (exact arithmetic)."""
        return game24.check_answer(answer, problem.data["numbers"]).ok

    def leaks(self, problems: Sequence[Problem]) -> list[str]:
        """Problems the task text shows solved (the paper's demonstration ``4 9 10 13``)."""
        demos = {tuple(sorted(d)) for d in self.prompts.game24_demos}
        return [p.id for p in problems if tuple(p.data["numbers"]) in demos]
