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

``method`` is a method spec, as everywhere: ``"icpi+[model=off]"``, ``"icpi[k=10]"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from icpi.core.samplers import Sampler
from icpi.envs import load_task, task_spec_of
from icpi.envs.spec import Instance, SkillTask
from icpi.llm import LLMConfig
from icpi.manipulation.config import DEFAULT_METHOD, RunConfig
from icpi.manipulation.dataset import ImprovementDataset, collect_dataset
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
    method: str = DEFAULT_METHOD,
    iterations: int | None = None,
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
        method: Method spec: an id (``icpi``, ``icpi+``, ``lknn20``, ... see the README's
            table) with optional settings, e.g. ``icpi+[model=off]``.
        iterations: Rollouts in total, θ0 included; ``None``: the default of ``icpi run``.
        seed: Seed of the instance (when drawn), the method and every model call.
        dataset: Dataset directory (needed by dataset methods on tasks that ship none).
        settings: The method's settings by name (e.g. ``{"k": 10}``), validated like flags.
        llm: Model endpoint and sampling (an :class:`~icpi.llm.LLMConfig` or its fields,
            e.g. ``{"base_url": ..., "model": ...}``); ``None``: the method's defaults over
            the environment (the embedded model). The spec's model keys
            (``icpi[temperature=0.2]``) go over the fields.
        instance: The instance (e.g. the real arm's configured goal); ``None`` draws one
            from ``seed``.
        sampler: A sampler instead of a model (tests, dry runs).
        **run: Other :class:`~icpi.manipulation.config.RunConfig` fields (``theta0``,
            ``dataset_size``).

    Returns:
        The summary: initial, final and best cost, the best θ, sources, model use.

    Raises:
        ConfigError: On a bad spec or setting, or model keys in the spec beside an
            :class:`~icpi.llm.LLMConfig` object.
    """
    obj = task_of(task)
    layer = {
        "task": task if isinstance(task, str) else task_spec_of(obj),
        "method": method,
        "iterations": iterations,
        "seed": seed,
        "dataset": None if dataset is None else str(dataset),
        "settings": dict(settings or {}),
        **run,
    }
    cfg, llm_cfg = resolve(layer, llm, where="improve()")
    return run_method(cfg, out, llm=llm_cfg, sampler=sampler, task=obj, instance=instance)


def resolve(
    layer: Mapping[str, Any], llm: LLMConfig | Mapping[str, Any] | None, where: str
) -> tuple[RunConfig, LLMConfig | None]:
    """The run and LLM configurations of a Python front end (``improve``, the sampler).

    Args:
        layer: Run settings; ``method`` a method spec.
        llm: An LLM configuration, its fields, or ``None``.
        where: The front end, for messages.

    Returns:
        ``(RunConfig, LLMConfig or None)``; ``None`` when neither ``llm`` nor the spec sets
        a model setting (the run then resolves the method's defaults).

    Raises:
        ConfigError: On a bad spec or setting, or model keys in the spec beside an
            :class:`~icpi.llm.LLMConfig` object.
    """
    from icpi.errors import ConfigError
    from icpi.manipulation.config import expand_method_spec, load_run_config
    from icpi.manipulation.methods import get_method

    given = None if isinstance(llm, LLMConfig) else llm
    run_layer, llm_layer = expand_method_spec(layer, given, where=where)
    cfg = load_run_config(run_layer, where=where)
    if isinstance(llm, LLMConfig):
        if llm_layer:
            raise ConfigError(
                f"model settings {sorted(llm_layer)} in the method spec {layer['method']!r}"
                f" beside an LLMConfig in {where}: set them in the LLMConfig"
            )
        return cfg, llm
    if not llm_layer:
        return cfg, None
    return cfg, LLMConfig.from_sources(
        overrides=llm_layer, defaults=get_method(cfg.method).llm_defaults
    )


__all__ = ["collect", "improve", "resolve", "task_of"]
