"""The Python API: collect a dataset and improve a skill on any task, yours included.

Every function takes a task as a spec (a shipped id such as ``"slide-gc"``,
``"module:Class"``, ``"path/to/file.py:Class"``) or as an object with the members of
:class:`~icpi.envs.spec.SkillTask` (``examples/putt.py`` is a complete one). They are the
CLI's verbs without the command line: the same run directories, resume, locks, caches
and settings (:class:`~icpi.manipulation.config.RunConfig`, method settings by name).

Example::

    from icpi import api

    task = PuttTask()
    api.collect(task, "data/putt", size=300)
    summary = api.improve(task, "runs/putt-0", method="icpi+", dataset="data/putt", seed=0)
    summary["best_theta"], summary["best_cost"]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from icpi.core.samplers import Sampler
from icpi.envs import load_task
from icpi.envs.spec import Instance, SkillTask
from icpi.llm import LLMConfig
from icpi.manipulation.dataset import ImprovementDataset, collect_dataset
from icpi.manipulation.methods import get_method
from icpi.manipulation.run import run_method


def task_of(task: str | SkillTask) -> SkillTask:
    """The task object of a spec (or the object itself).

    Args:
        task: Spec or task.

    Returns:
        The task.
    """
    return load_task(task) if isinstance(task, str) else task


def collect(
    task: str | SkillTask,
    out: Path | str,
    size: int = 300,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> ImprovementDataset:
    """Build an improvement dataset by hindsight relabelling of rollouts (no model).

    Resumable: a collection killed half-way continues where it stopped.

    Args:
        task: The task.
        out: Dataset directory (``examples.parquet`` + ``meta.json``).
        size: Examples.
        seed: Seed of the instances, rollouts and selection.
        workers: Threads of batched rollouts (tasks with ``rollout_batch``).
        progress: Show a progress bar.

    Returns:
        The dataset.
    """
    return collect_dataset(
        task, Path(out), size=size, seed=seed, workers=workers, progress=progress
    )


def improve(
    task: str | SkillTask,
    out: Path | str,
    method: str = "icpi+",
    iterations: int = 20,
    seed: int = 0,
    dataset: Path | str | None = None,
    settings: Mapping[str, Any] | None = None,
    llm: LLMConfig | Mapping[str, Any] | None = None,
    instance: Instance | None = None,
    sampler: Sampler | None = None,
    **run: Any,
) -> dict[str, Any]:
    """Improve a skill on one task instance with any registered method; resumable.

    Args:
        task: The task.
        out: Run directory (``config.json``, ``records.jsonl``, ...); rerun to resume.
        method: Method id (``icpi``, ``icpi+``, ``lknn20``, ... see the README's table).
        iterations: Rollouts in total, θ0 included.
        seed: Seed of the instance (when drawn), the method and every model call.
        dataset: Dataset directory (needed by dataset methods on tasks that ship none).
        settings: The method's settings by name (e.g. ``{"k": 10}``), validated like flags.
        llm: Model endpoint and sampling (an :class:`~icpi.llm.LLMConfig` or its fields,
            e.g. ``{"base_url": ..., "model": ...}``); ``None``: the method's defaults over
            the environment (the embedded model).
        instance: The instance (e.g. the real arm's configured goal); ``None`` draws one
            from ``seed``.
        sampler: A sampler instead of a model (tests, dry runs).
        **run: Other :class:`~icpi.manipulation.config.RunConfig` fields (``theta0``,
            ``dataset_size``).

    Returns:
        The summary: initial, final and best cost, the best θ, sources, model use.
    """
    from icpi.manipulation.config import load_run_config

    obj = task_of(task)
    spec = task if isinstance(task, str) else obj.task_id
    layer = {
        "task": spec,
        "method": method,
        "iterations": iterations,
        "seed": seed,
        "dataset": None if dataset is None else str(dataset),
        "settings": dict(settings or {}),
        **run,
    }
    cfg = load_run_config(layer, where="improve()")
    if llm is not None and not isinstance(llm, LLMConfig):
        llm = LLMConfig.from_sources(overrides=llm, defaults=get_method(method).llm_defaults)
    return run_method(cfg, out, llm=llm, sampler=sampler, task=obj, instance=instance)


__all__ = ["collect", "improve", "task_of"]
