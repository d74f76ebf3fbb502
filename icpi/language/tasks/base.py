"""What a language task is: problems, the text the model answers, a reward, final answers.

A task is a class with its own settings dataclass (:attr:`LanguageTask.Settings`),
registered by :func:`icpi.language.tasks.register` under its id, one module per task. It
turns a problem into the task text the model answers, gives a reward provider whose
feedback carries ``info["success"]`` (the hidden, exact check) and the reward marks ICRL
prompting shows, and — for tasks with a checkable final answer — reads that answer
(:meth:`LanguageTask.final_answer`, :meth:`LanguageTask.answer_span`), what ME-ICPO's vote
compares (:meth:`LanguageTask.vote_keys`) and whether it is right
(:meth:`LanguageTask.is_correct`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

from icpi.config import STRICT
from icpi.core import RewardProvider, Sampler
from icpi.language.prompts import PACKAGE, PromptSet


@dataclass(frozen=True)
class Problem:
    """One problem of a task."""

    index: int
    """Position in the run's problem list."""
    id: str
    """Stable identifier (``24:1 4 8 8``, ``math:17``, ``writing:0:3``)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Task-specific content (numbers, question and answer, sentences); ``position`` is
    the problem's index in the task's whole ordered list (``--start``/``--end`` count it)."""


@dataclass(frozen=True)
class TaskSettings:
    """Base class of every task's settings (and the settings of a task without any)."""

    __pydantic_config__ = STRICT


S = TypeVar("S", bound=TaskSettings)


def reward_tag(value: float) -> str:
    """Write a reward tag as ICRL prompts show it.

    Args:
        value: The reward.

    Returns:
        ``<Reward: 3.00>``.
    """
    return f"<Reward: {value:.2f}>"


class LanguageTask(ABC, Generic[S]):
    """A language task (see the module docstring)."""

    name: ClassVar[str]
    """Task id (``game24``, ``writing``, ``math``): the key of the registry."""
    summary: ClassVar[str]
    """One line for the README's task list."""
    Settings: ClassVar[type[TaskSettings]] = TaskSettings
    """Its settings dataclass."""
    has_answers: ClassVar[bool] = False
    """Whether responses end in a checkable final answer (ME-ICPO needs one)."""
    max_reward: ClassVar[float] = 1.0
    """Highest reward a response can earn (Reflexion reflects below it)."""
    stop: ClassVar[tuple[str, ...]] = ("<attempt>", "</attempt>")
    """Stop sequences of a response (they end a plain completion that runs on)."""
    judge_chars: int | None = None
    """Longest response text shown to a judge, characters (``None``: whole); the runner
    sets it from the context window."""

    def __init__(self, settings: S | None = None, prompts: PromptSet = PACKAGE) -> None:
        """Create the task.

        Args:
            settings: An instance of :attr:`Settings`; ``None``: the defaults.
            prompts: The texts shown to the model (package or paper).

        Raises:
            TypeError: If the settings belong to another task.
        """
        given = settings if settings is not None else self.Settings()
        if not isinstance(given, self.Settings):
            raise TypeError(f"{self.name} takes {self.Settings.__name__}, got {settings!r}")
        self.settings: S = cast(S, given)
        self.prompts = prompts

    @property
    @abstractmethod
    def reward_seen(self) -> str:
        """Which reward the method sees, in one sentence (stated in ``config.json``)."""

    def reward_without_judge(self) -> str | None:
        """What a method that uses no reward records instead of the judge's (None: no way).

        Returns:
            A sentence for ``config.json``, or ``None`` when success itself needs the judge.
        """
        return None

    def default_start(self) -> int:
        """Position of the first problem when ``--start`` is not given."""
        return 0

    @abstractmethod
    def problems(self, seed: int, start: int, count: int) -> list[Problem]:
        """Return ``count`` problems from position ``start`` of the task's ordered list.

        Args:
            seed: Run seed (for tasks whose problems are drawn).
            start: Position of the first problem.
            count: Number of problems (fewer when the list ends first).

        Returns:
            The problems, ``index`` 0, 1, ... and ``data["position"]`` start, start + 1, ...
        """

    @abstractmethod
    def describe(self, problem: Problem) -> str:
        """Return the task text the model answers."""

    @abstractmethod
    def reward(
        self, problem: Problem, judge: Sampler | None, *, judged: bool = True
    ) -> RewardProvider:
        """Return the reward provider of one problem.

        Args:
            problem: The problem.
            judge: Judge sampler (LLM-judged rewards).
            judged: Whether the method uses the reward: ``False`` asks for the exact checks
                only (no judge call), where the task can decide success without the judge.
        """

    def final_answer(self, text: str) -> str | None:
        """Return the normalised final answer of a response, if any."""
        return None

    def answer_span(self, text: str) -> tuple[int, int] | None:
        """Return where the final answer stands in a response (kept when it is cut)."""
        return None

    def vote_keys(self, answers: Sequence[str | None]) -> list[str | None]:
        """Return what ME-ICPO's majority vote compares for each answer (``None``: none)."""
        return [None for _ in answers]

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        """Return whether a final answer solves the problem."""
        return False

    def leaks(self, problems: Sequence[Problem]) -> list[str]:
        """Problems of a run that the task text shows solved (a note for the user).

        Args:
            problems: The run's problems.

        Returns:
            Their ids.
        """
        return []


# --------------------------------------------------------------------------- verdicts
_MARKED = r"(?:final\s+)?(?:answer|score|verdict|rating|coheren\w*(?:\s+score)?)"
#: A verdict line: a marker at the start of a line, then the number (``**Answer**: 3``,
#: ``Score: 3``, ``Coherence score: 8``, ``Answer is 3``).
_VERDICT_LINE = re.compile(
    rf"^[\W_]*{_MARKED}[\W_]{{0,6}}(?:is\s*)?[\W_]{{0,3}}([+-]?\d+(?:\.\d+)?)", re.I | re.M
)
_LEADING = re.compile(r"\W*?([+-]?\d+(?:\.\d+)?)\b")
_ONLY_NUMBER = re.compile(r"\W*[+-]?\d+(?:\.\d+)?\W*")
_ENDS_MARKED = re.compile(rf"\b{_MARKED}\W*$", re.I)
_ANYWHERE = re.compile(rf"\b{_MARKED}\W{{0,6}}(?:is\s*)?([+-]?\d+(?:\.\d+)?)", re.I)


def read_verdict(text: str, prompt: str = "") -> float | None:
    """Read a judge's numeric verdict.

    In order: the last line that starts with a verdict marker and gives a number
    (``**Answer**: 3``, ``Score: 3``, ``Coherence score: 8``) — a judge that reasons first
    ends with it; then, when the prompt itself ends with a verdict marker (``... Answer:``)
    or the answer is only a number, a number the answer starts with (a ``0`` line followed
    by ``The answer is 3`` is 0 there); then the last ``answer is 3`` / ``score: 3``
    anywhere.

    Args:
        text: The judge's answer.
        prompt: The judge's prompt (whether it ends with a verdict marker).

    Returns:
        The number, or ``None`` when there is none.
    """
    text = text or ""
    lines = _VERDICT_LINE.findall(text)
    if lines:
        return float(lines[-1])
    if _ENDS_MARKED.search(prompt) or _ONLY_NUMBER.fullmatch(text):
        m = _LEADING.match(text)
        if m is not None:
            return float(m.group(1))
    found = _ANYWHERE.findall(text)
    return float(found[-1]) if found else None
