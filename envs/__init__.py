"""Simulated parametric-skill tasks (MuJoCo) behind Gymnasium.

This module stays light: it registers the env ids without importing MuJoCo. The task
classes live in :mod:`icpi.envs.slide`, :mod:`icpi.envs.rope_swing` and
:mod:`icpi.envs.ball_roll`; :func:`make_task` builds one by its short id.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:
    from icpi.envs.base import Task

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


def register_envs() -> None:
    """Register every task with Gymnasium (idempotent, imports no MuJoCo)."""
    for env_id, _, entry_point in TASKS.values():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=MAX_EPISODE_STEPS)


__all__ = ["MAX_EPISODE_STEPS", "TASKS", "make_task", "register_envs"]
