"""Simulated parametric-skill tasks (MuJoCo) behind Gymnasium.

This module stays light: it registers the env ids without importing MuJoCo. The task
classes live in :mod:`icpi.envs.slide`, :mod:`icpi.envs.rope_swing` and
:mod:`icpi.envs.ball_roll`; :func:`make_task` builds one by its short id.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:
    from icpi.envs.base import Task
    from icpi.envs.spec import SkillTask

# Short task id -> (Gymnasium id, "module:TaskClass", "module:EnvClass").
TASKS: dict[str, tuple[str, str, str]] = {
    "slide": ("icpi/Slide-v0", "icpi.envs.slide:SlideTask", "icpi.envs.slide:SlideEnv"),
    "slide-gc": ("icpi/SlideGC-v0", "icpi.envs.slide:SlideGCTask", "icpi.envs.slide:SlideGCEnv"),
    "rope-swing": (
        "icpi/RopeSwing-v0",
        "icpi.envs.rope_swing:RopeSwingTask",
        "icpi.envs.rope_swing:RopeSwingEnv",
    ),
    "rope-swing-gc": (
        "icpi/RopeSwingGC-v0",
        "icpi.envs.rope_swing:RopeSwingGCTask",
        "icpi.envs.rope_swing:RopeSwingGCEnv",
    ),
    "ball-roll-gc": (
        "icpi/BallRollGC-v0",
        "icpi.envs.ball_roll:BallRollGCTask",
        "icpi.envs.ball_roll:BallRollGCEnv",
    ),
}

# One env episode is one improvement run on one instance.
MAX_EPISODE_STEPS = 20


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_task(task_id: str) -> Task:
    """Build a task by its short id.

    Args:
        task_id: One of ``slide``, ``slide-gc``, ``rope-swing``, ``rope-swing-gc``,
            ``ball-roll-gc``.

    Returns:
        The task object (rollouts without Gymnasium).

    Raises:
        ConfigError: If the id is unknown (a ``ValueError``).
    """
    if task_id not in TASKS:
        from icpi.errors import ConfigError

        raise ConfigError(f"unknown task {task_id!r}; choose one of {', '.join(TASKS)}")
    task: Task = _load(TASKS[task_id][1])()
    return task


def load_task(spec: str) -> SkillTask:
    """Build a task from a shipped id or from your own code.

    Args:
        spec: A shipped id (see :func:`make_task`), ``module:Class`` (an importable module)
            or ``path/to/file.py:Class``; ``Class`` may also be a function or an object.
            What it names (called without arguments if callable) must have the members of
            :class:`~icpi.envs.spec.SkillTask`.

    Returns:
        The task.

    Raises:
        ConfigError: If the spec names nothing importable or not a task.
    """
    if spec in TASKS:
        return make_task(spec)
    from icpi.envs.spec import SkillTask, TaskError
    from icpi.errors import ConfigError

    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(
            f"unknown task {spec!r}; use a shipped id ({', '.join(TASKS)}), module:Class or"
            " path/to/file.py:Class"
        )
    try:
        if target.endswith(".py") or os.sep in target:
            module = _module_from_file(Path(target))
        else:
            module = importlib.import_module(target)
        obj = getattr(module, attr)
    except (ImportError, AttributeError, OSError, SyntaxError, TaskError) as err:
        raise ConfigError(f"cannot load task {spec!r}: {err}") from None
    try:
        task = obj() if callable(obj) else obj
    except TaskError as err:  # e.g. a θ spec built in __init__
        raise ConfigError(f"cannot load task {spec!r}: {err}") from None
    if not isinstance(task, SkillTask):
        missing = [m for m in ("task_id", "theta_spec", "outcome", "sample_instance", "rollout")
                   if not hasattr(task, m)]  # fmt: skip
        raise ConfigError(f"{spec!r} is not a task: it lacks {', '.join(missing)}")
    return task


def portable_task_spec(spec: str) -> str:
    """The spec of a task that loads the same task from any working directory.

    ``config.json`` and a dataset's ``meta.json`` record it, so that a resume, ``icpi
    report`` or a rebuild started elsewhere imports the same code.

    Args:
        spec: A task spec as :func:`load_task` takes it.

    Returns:
        A shipped id unchanged; ``path/file.py:Class`` with the path made absolute;
        ``module:Class`` unchanged when the module is importable without the working
        directory or the running script's folder on the path (an installed package) or
        is a package's module, else the module's file, absolute.
    """
    target, sep, attr = spec.rpartition(":")
    if spec in TASKS or not sep or not target or not attr:
        return spec
    if target.endswith(".py") or os.sep in target:
        return f"{Path(target).expanduser().resolve()}:{attr}"
    if "." in target or _importable_without_cwd(target):
        return spec  # a package's module: its file alone would lose the package
    import importlib.util

    found = importlib.util.find_spec(target)
    if found is not None and found.origin and found.origin.endswith(".py"):
        return f"{Path(found.origin).resolve()}:{attr}"
    return spec


def task_spec_of(task: Any) -> str:
    """The spec that rebuilds a task object (its class, called without arguments).

    Args:
        task: A task object (a shipped task, your own class).

    Returns:
        The shipped id of a shipped task; else ``module:Class`` or ``/abs/file.py:Class``
        (see :func:`portable_task_spec`); the object's ``task_id`` when its class cannot
        be named (defined in a function, or in an interactive session).
    """
    import inspect
    import sys

    task_id = str(getattr(task, "task_id", type(task).__name__))
    cls = type(task)
    if task_id in TASKS and f"{cls.__module__}:{cls.__qualname__}" == TASKS[task_id][1]:
        return task_id
    if "<" in cls.__qualname__:  # a class defined in a function
        return task_id
    module = sys.modules.get(cls.__module__)
    if cls.__module__ == "__main__" or cls.__module__.startswith(_USER_MODULE):
        try:
            return f"{Path(inspect.getfile(cls)).resolve()}:{cls.__qualname__}"
        except (TypeError, OSError):
            return task_id
    if module is None:
        return task_id
    return portable_task_spec(f"{cls.__module__}:{cls.__qualname__}")


def _importable_without_cwd(module: str) -> bool:
    """Whether a top-level module is found without the working directory or script folder."""
    import importlib.machinery
    import sys

    # Left off: the working directory and the running script's folder (sys.path[0]).
    local = {os.getcwd(), os.path.abspath(sys.path[0] or ".")} if sys.path else {os.getcwd()}
    path = [p for p in sys.path if p not in ("", ".") and os.path.abspath(p) not in local]
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            if finder is importlib.machinery.PathFinder:
                found = importlib.machinery.PathFinder.find_spec(module, path)
            else:
                found = find(module, None)
        except (ImportError, ValueError):
            continue
        if found is not None:
            return True
    return False


#: Module name prefix of a task imported from a file.
_USER_MODULE = "icpi_user_task_"


def _module_from_file(path: Path) -> Any:
    """Import a Python file as a module (once per process, under a stable name)."""
    import importlib.util
    import sys

    path = path.resolve()
    if not path.is_file():
        raise ImportError(f"no such file {path}")
    name = f"{_USER_MODULE}{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def register_envs() -> None:
    """Register every task with Gymnasium (idempotent, imports no MuJoCo)."""
    for env_id, _, entry_point in TASKS.values():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=MAX_EPISODE_STEPS)


__all__ = [
    "MAX_EPISODE_STEPS",
    "TASKS",
    "load_task",
    "make_task",
    "portable_task_spec",
    "register_envs",
    "task_spec_of",
]
