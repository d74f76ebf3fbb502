"""One run of any method on one task instance, written to a self-explaining run directory.

:func:`run_method` is the one entry point of ``icpi run``, of every run of ``icpi bench``,
of the arm driver and of the Python API: it resolves the task and its instance, opens the
run directory through a :class:`~icpi.session.RunSession` (lock, ``config.json``, resume),
builds the method from the registry, resumes what a killed run finished, and drives the
rest. Records are appended as they happen; ``summary.json`` is written at the end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from icpi.core.estimate import ExpectationNotice
from icpi.core.files import append_jsonl, read_jsonl, write_json, write_jsonl
from icpi.core.samplers import Sampler
from icpi.envs import load_task, portable_task_spec
from icpi.envs.spec import SUCCESS_TOLERANCE, Instance, SkillTask, e_unit, success_threshold
from icpi.llm import LLMConfig
from icpi.manipulation.calibration import instance_params
from icpi.manipulation.config import RunConfig, dump_run_config
from icpi.manipulation.dataset import ImprovementDataset, load_default_dataset
from icpi.manipulation.methods import Method, MethodContext, MethodSettings, drive, get_method
from icpi.session import RunSession

log = logging.getLogger(__name__)

#: Sampling fields every model-using method sets per call (derived from the run seed).
PER_CALL = ("n", "seed")


def initial_theta(task: SkillTask, rng: np.random.Generator, how: str) -> np.ndarray:
    """θ0 of a run.

    Args:
        task: The task.
        rng: Random generator (used by ``random``).
        how: ``center`` or ``random``.

    Returns:
        θ0.

    Raises:
        ValueError: On an unknown choice.
    """
    spec = task.theta_spec
    if how == "center":
        centre: np.ndarray = 0.5 * (spec.low_array + spec.high_array)
        return centre
    if how == "random":
        theta: np.ndarray = spec.sample(rng)
        return theta
    raise ValueError(f"theta0 must be 'center' or 'random', got {how!r}")


def load_dataset(cfg: RunConfig, task: SkillTask) -> ImprovementDataset:
    """The dataset of a run (the shipped default or ``cfg.dataset``, optionally subset).

    Args:
        cfg: The run configuration.
        task: The task (the dataset must be of it).

    Returns:
        The dataset.

    Raises:
        DatasetError: If it is missing, corrupt or of another task.
        ConfigError: If ``dataset_size`` exceeds it.
    """
    from icpi.errors import ConfigError

    if cfg.dataset is None:
        ds = load_default_dataset(task.task_id)
    else:
        ds = ImprovementDataset.load(Path(cfg.dataset), task_id=task.task_id, task=task)
    if cfg.dataset_size is not None:
        if cfg.dataset_size > len(ds):
            raise ConfigError(
                f"dataset_size={cfg.dataset_size} exceeds the dataset's {len(ds)} examples"
            )
        ds = ds.subset(cfg.dataset_size, seed=cfg.seed)
    return ds


def method_llm(cfg: RunConfig, llm: LLMConfig | None) -> LLMConfig:
    """The LLM configuration of a run: the given one, or the method's defaults over the env.

    Args:
        cfg: The run configuration.
        llm: An already resolved configuration (e.g. from the CLI), or ``None``.

    Returns:
        The configuration the run uses.
    """
    if llm is not None:
        return llm
    return LLMConfig.from_sources(defaults=get_method(cfg.method).llm_defaults)


def method_settings(cfg: RunConfig) -> MethodSettings:
    """The settings of a run's method: ``cfg.settings``, or its defaults when bare.

    Args:
        cfg: The run configuration.

    Returns:
        ``cfg.settings`` if it belongs to the method; the method's defaults (with the base
        settings given, e.g. ``final_best``) if it is the bare :class:`MethodSettings` of
        ``RunConfig(task, method=...)``.

    Raises:
        ConfigError: If the settings belong to another method (they would be dropped).
    """
    from icpi.errors import ConfigError

    method = get_method(cfg.method)
    if type(cfg.settings) is MethodSettings and method.Settings is not MethodSettings:
        # the base settings (final_best) hold for every method; the rest keep their defaults
        return method.Settings(**dataclasses.asdict(cfg.settings))
    if not isinstance(cfg.settings, method.Settings):
        raise ConfigError(
            f"method {method.name} takes {method.Settings.__name__}, but the RunConfig holds"
            f" {type(cfg.settings).__name__}: pass {method.Settings.__name__}(...) or"
            " settings by name (load_run_config, api.improve(settings=...))"
        )
    return cfg.settings


def run_method(
    cfg: RunConfig,
    out: Path | str,
    llm: LLMConfig | None = None,
    sampler: Sampler | None = None,
    task: SkillTask | None = None,
    instance: Instance | None = None,
    notice: ExpectationNotice | None = None,
    theta0: Any = None,
) -> dict[str, Any]:
    """Run (or resume) one method on one task instance.

    Args:
        cfg: What to run (``cfg.method`` picks the method from the registry).
        out: Run directory (resumed when it holds the same run).
        llm: Model endpoint and sampling for a model-using method; ``None`` resolves the
            method's defaults over the environment (the embedded model by default).
        sampler: Use this sampler instead of a model client (tests, dry runs).
        task: The task object (the real arm's adapter, a user's own task); ``None``
            builds ``cfg.task``.
        instance: The instance; ``None`` draws one from ``cfg.seed`` as
            ``env.reset(seed=cfg.seed)`` does.
        notice: Where this run's model calls are counted and timed for the expected
            duration (a benchmark shares one among its runs); ``None``: the run logs its
            own, after its first model call.
        theta0: The first θ (the arm driver's start θ, inside the arm's own θ box);
            ``None``: ``cfg.theta0`` of the task's θ bounds.

    Returns:
        The summary (also written to ``summary.json``).

    Raises:
        UserError: On a bad setting (settings of another method included), dataset or run
            directory (one line, see :mod:`icpi.errors`).
    """
    method = get_method(cfg.method)
    task = task if task is not None else load_task(cfg.task)
    settings = task_settings(method_settings(cfg), task, method)
    cfg = portable_config(dataclasses.replace(cfg, settings=settings), out)
    rng = np.random.default_rng(cfg.seed)
    if instance is None:
        instance = task.sample_instance(rng)
    if theta0 is None:
        theta0 = initial_theta(task, rng, cfg.theta0)
    else:
        theta0, _ = task.theta_spec.validate(theta0)
    uses_llm = sampler is None and method.needs_model(settings)
    llm_cfg = method_llm(cfg, llm) if uses_llm else None
    config = {
        "run": dump_run_config(cfg),
        "llm": llm_cfg.recorded(per_call=PER_CALL) if llm_cfg is not None else None,
        "sampler": type(sampler).__name__ if sampler is not None else None,
        "instance": {"goal": list(instance.goal), "physics": dict(instance.physics)},
        "theta0": theta0,
        "theta_names": task.theta_spec.names,
        "theta_units": task.theta_spec.units,
    }
    dataset = load_dataset(cfg, task) if method.uses_dataset else None
    legacy = {f"run.settings.{key}": value for key, value in settings.legacy.items()}
    with RunSession(
        out, config, seed=cfg.seed, llm=llm_cfg, grow=("run.iterations",), legacy=legacy
    ) as session:
        run_dir = session.run_dir
        if llm_cfg is not None:
            params = method.sampler_params(settings, task.theta_spec.dim)
            # a calibration proposer is told the instance (see icpi.manipulation.calibration)
            sampler = session.sampler(**instance_params(llm_cfg.model, cfg.task, cfg.seed, params))
        ctx = MethodContext(
            task=task,
            instance=instance,
            theta0=theta0,
            seed=cfg.seed,
            dataset=dataset,
            sampler=sampler,
            buffer=run_dir.buffer() if method.keeps_buffer else None,
            prompt_mode=llm_cfg.mode if llm_cfg is not None else "completion",
            iterations=cfg.iterations,
        )
        improver = method(ctx, settings)
        records_file = run_dir.records_file
        t0 = time.perf_counter()
        kept = improver.restore(read_jsonl(records_file))
        if kept:
            log.info("resuming %s at iteration %d", run_dir.path, len(kept))
        write_jsonl(records_file, kept)  # drops a torn line, or adds what the buffer holds
        if llm_cfg is not None and notice is None:
            left = cfg.iterations - max(1, len(kept))  # θ0 asks no model
            notice = ExpectationNotice(f"run {run_dir.path}", left)
        timer = _CallTimer(session, notice)

        def on_record(record: dict[str, Any]) -> None:
            append_jsonl(records_file, record)
            timer.update()

        records = drive(improver, task, instance, cfg.iterations, done=kept, on_record=on_record)
        summary = summarise_records(cfg, records, task)
        summary["wall_s_this_session"] = time.perf_counter() - t0
        write_json(run_dir.path / "summary.json", summary)
    return summary


def task_settings(
    settings: MethodSettings, task: SkillTask, method: type[Method[Any]] | None = None
) -> MethodSettings:
    """Method settings that default to the task's own (``e_unit`` unset) made explicit.

    Args:
        settings: The method's settings.
        task: The task.
        method: The method (its ``e_unit_scale`` scales the task's unit; icpi+ writes
            tenths of it).

    Returns:
        The settings with the task's values in place (``config.json`` records what ran).
    """
    if getattr(settings, "e_unit", 0.0) is None:
        unit = e_unit(task) * getattr(method, "e_unit_scale", 1.0)
        return dataclasses.replace(settings, e_unit=unit)  # type: ignore[call-arg]
    return settings


def portable_config(cfg: RunConfig, out: Path | str) -> RunConfig:
    """The configuration a run directory records: paths that work from any directory.

    The task spec becomes :func:`~icpi.envs.portable_task_spec` of it
    (``throw.py:ThrowTask`` → ``/abs/throw.py:ThrowTask``) and the dataset directory an
    absolute path, so that a resume or ``icpi report`` started elsewhere finds both. A run
    recorded by an earlier version with the values as given keeps them, so that it still
    resumes.

    Args:
        cfg: The configuration as given.
        out: The run directory.

    Returns:
        The configuration to run and record.
    """
    task = portable_task_spec(cfg.task)
    dataset = None if cfg.dataset is None else str(Path(cfg.dataset).expanduser().resolve())
    try:
        stored = json.loads((Path(out) / "config.json").read_text())["run"]
    except (OSError, ValueError, KeyError, TypeError):
        stored = {}
    if stored.get("task") == cfg.task:
        task = cfg.task
    if stored.get("dataset") == cfg.dataset:
        dataset = cfg.dataset
    return dataclasses.replace(cfg, task=task, dataset=dataset)


class _CallTimer:
    """Feeds a run's model-using rollouts (timed by its client) to an expectation notice."""

    def __init__(self, session: RunSession, notice: ExpectationNotice | None) -> None:
        self.session = session
        self.notice = notice
        self.calls = self.live = 0
        self.live_s = 0.0

    def update(self) -> None:
        """Pass the rollout just recorded on to the notice if it asked the model."""
        if self.notice is None or self.session.llm is None:
            return
        stats = self.session.client.stats
        calls, live = stats["calls"], stats["calls"] - stats["cache_hits"]
        live_s = stats["live_latency_s"]
        if calls > self.calls:
            self.notice.observe(live_s - self.live_s, live=live > self.live)
        self.calls, self.live, self.live_s = calls, live, live_s


def summarise_records(
    cfg: RunConfig, records: list[dict[str, Any]], task: SkillTask | None = None
) -> dict[str, Any]:
    """Final figures of a run.

    Args:
        cfg: The run configuration.
        records: All records.
        task: The task (its id names it in tables, its success threshold judges the best
            cost); ``None``: the spec and the default threshold.

    Returns:
        The task's id, costs (initial, final, best) and the best θ, success (best cost
        under the task's ``success_threshold``) and that threshold, answer sources, parse
        failures, model errors, mean prompt tokens per model call and model seconds per
        iteration (model-using methods).
    """
    threshold = success_threshold(task) if task is not None else SUCCESS_TOLERANCE
    costs = [r["cost"] for r in records]
    best = int(np.argmin(costs))
    queried = [r for r in records if r.get("model_calls")]
    calls = sum(r["model_calls"] for r in queried)
    sources: dict[str, int] = {}
    for r in records[1:]:
        source = r.get("source", cfg.method)
        sources[source] = sources.get(source, 0) + 1
    return {
        "task": cfg.task,
        "task_id": task.task_id if task is not None else cfg.task,
        "method": cfg.method,
        "seed": cfg.seed,
        "iterations": len(records),
        "initial_cost": costs[0],
        "final_cost": costs[-1],
        "best_cost": costs[best],
        "best_iteration": best,
        "best_theta": records[best]["theta"],
        "success": costs[best] < threshold,
        "success_threshold": threshold,
        "sources": sources,
        "parse_failures": sum(len(r.get("parse_errors", [])) for r in records),
        "model_errors": sum(r.get("model_errors", 0) for r in records),
        "mean_prompt_tokens": (
            sum(r["prompt_tokens"] for r in queried) / calls if calls else None
        ),  # None (JSON null) for a method that never asked a model
        "model_s_per_iteration": (
            float(np.mean([r["model_s"] for r in queried])) if queried else None
        ),
    }
