"""The registry of language tasks: one module per task in this package, found on first use."""

from __future__ import annotations

from typing import Any

from icpi.core.registry import Registry
from icpi.language.tasks.base import LanguageTask

_REGISTRY: Registry[LanguageTask[Any]] = Registry(
    LanguageTask,
    "icpi.language.tasks",
    "language task",
    order=("game24", "writing", "math"),
    skip=("base", "registry"),
)
#: Task id -> class: game24, writing, math, then the others by module name (what
#: ``--task`` accepts; filled by :func:`load_tasks`).
TASKS = _REGISTRY.entries
register = _REGISTRY.register
load_tasks = _REGISTRY.load
get_task = _REGISTRY.get
