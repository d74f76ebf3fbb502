"""The registry of language tasks: one module per task in this package, found on first use."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, TypeVar

from icpi.errors import ConfigError
from icpi.language.tasks.base import LanguageTask

T = TypeVar("T", bound=type[LanguageTask[Any]])

#: Task id -> class, in the order of :data:`_ORDER` (what ``--task`` accepts).
TASKS: dict[str, type[LanguageTask[Any]]] = {}
_ORDER = ("game24", "writing", "math")
_NOT_TASKS = ("base", "registry")
_LOADED = False


def register(cls: T) -> T:
    """Class decorator: add a task to :data:`TASKS` under its ``name``.

    Args:
        cls: The task class.

    Returns:
        The class, unchanged.

    Raises:
        ValueError: If another class already has that name.
    """
    other = TASKS.get(cls.name)
    if other is not None and other is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice ({other} and {cls})")
    TASKS[cls.name] = cls
    return cls


def load_tasks() -> dict[str, type[LanguageTask[Any]]]:
    """Import every task module of this package (once) and return the registry.

    Returns:
        :data:`TASKS`, in the order game24, writing, math, then the others by name.
    """
    global _LOADED
    if not _LOADED:
        package = importlib.import_module("icpi.language.tasks")
        names = [
            m.name
            for m in pkgutil.iter_modules(package.__path__)
            if not m.name.startswith("_") and m.name not in _NOT_TASKS
        ]
        for name in sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else 99, n)):
            importlib.import_module(f"icpi.language.tasks.{name}")
        rank = {n: i for i, n in enumerate(_ORDER)}
        ordered = sorted(TASKS.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0]))
        TASKS.clear()
        TASKS.update(ordered)
        _LOADED = True
    return TASKS


def get_task(name: str) -> type[LanguageTask[Any]]:
    """The task class of an id.

    Args:
        name: Task id.

    Returns:
        The class.

    Raises:
        ConfigError: If no task has that id (the message lists them).
    """
    tasks = load_tasks()
    if name not in tasks:
        raise ConfigError(f"unknown language task {name!r}; choose one of {', '.join(tasks)}")
    return tasks[name]
