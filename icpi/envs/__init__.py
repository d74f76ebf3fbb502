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
    from icpi.envs.spec import SkillTask
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
    except (ImportError, AttributeError, OSError, SyntaxError) as err:
        raise ConfigError(f"cannot load task {spec!r}: {err}") from None
    task = obj() if callable(obj) else obj
    if not isinstance(task, SkillTask):
        missing = [m for m in ("task_id", "theta_spec", "outcome", "sample_instance", "rollout")
                   if not hasattr(task, m)]  # fmt: skip
        raise ConfigError(f"{spec!r} is not a task: it lacks {', '.join(missing)}")
    return task


def _module_from_file(path: Path) -> Any:
    """Import a Python file as a module (once per process, under a stable name)."""
    import importlib.util
    import sys

    path = path.resolve()
    if not path.is_file():
        raise ImportError(f"no such file {path}")
    name = f"icpi_user_task_{abs(hash(str(path)))}"
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


__all__ = ["MAX_EPISODE_STEPS", "TASKS", "load_task", "make_task", "register_envs"]
