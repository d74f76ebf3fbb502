"""Language tasks, one module each, found by a registry (:func:`load_tasks`).

- :mod:`~icpi.language.tasks.game24`: Game of 24 on the standard split, the paper's judge
  reward, exact success.
- :mod:`~icpi.language.tasks.writing`: creative writing judged for coherence.
- :mod:`~icpi.language.tasks.math`: math questions from a JSONL file (``math-verify``).

A new task is one new module defining a :class:`LanguageTask` subclass decorated with
:func:`register`.
"""

from __future__ import annotations

from typing import Any

from icpi.language.prompts import PACKAGE, PromptSet
from icpi.language.tasks.base import (
    LanguageTask,
    Problem,
    TaskSettings,
    read_verdict,
    reward_tag,
)

# The shipped tasks (imported here so that their names are importable from this package;
# load_tasks() also finds modules added later).
from icpi.language.tasks.game24 import Game24Reward, Game24Settings, Game24Task
from icpi.language.tasks.math import MathSettings, MathTask, load_math_problems
from icpi.language.tasks.registry import TASKS, get_task, load_tasks, register
from icpi.language.tasks.writing import WritingSettings, WritingTask


def make_task(
    name: str,
    settings: TaskSettings | None = None,
    prompts: PromptSet = PACKAGE,
) -> LanguageTask[Any]:
    """Build a task by id.

    Args:
        name: ``game24``, ``writing``, ``math`` or another registered id.
        settings: The task's settings (``None``: its defaults).
        prompts: The texts shown to the model.

    Returns:
        The task.

    Raises:
        ConfigError: On an unknown task or invalid settings.
    """
    return get_task(name)(settings, prompts)


__all__ = [
    "TASKS",
    "Game24Reward",
    "Game24Settings",
    "Game24Task",
    "LanguageTask",
    "MathSettings",
    "MathTask",
    "Problem",
    "TaskSettings",
    "WritingSettings",
    "WritingTask",
    "get_task",
    "load_math_problems",
    "load_tasks",
    "make_task",
    "read_verdict",
    "register",
    "reward_tag",
]
