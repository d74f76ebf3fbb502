"""One ICPI run on one simulated task instance, written to a self-explaining run directory."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from icpi.core import LLMSampler, Sampler
from icpi.core.records import jsonable
from icpi.core.rundir import RunDir, append_jsonl, read_jsonl, write_jsonl
from icpi.envs import make_task
from icpi.envs.base import SUCCESS_TOLERANCE
from icpi.llm import LLMClient, LLMConfig
from icpi.manipulation.dataset import ImprovementDataset, load_default_dataset
from icpi.manipulation.improver import ICPIImprover, ICPISettings, SkillTask
from icpi.manipulation.methods import (
    CMAES,
    METHODS,
    BayesianOptimisation,
    Improver,
    NeighbourCorrection,
    RandomShooting,
    drive,
)

log = logging.getLogger(__name__)

# Completion length of one Δθ answer (three signed integers fit in ~10 tokens).
ANSWER_MAX_TOKENS = 24


@dataclass(frozen=True)
class RunConfig:
    """What to run (the resolved config is written to ``config.json``)."""

    task: str
    """Task id (``slide``, ``slide-gc``, ``rope-swing``, ``rope-swing-gc``, ``ball-roll-gc``)."""
    method: str = "icpi"
    """Improvement method."""
    seed: int = 0
    """Seed of the task instance (as ``env.reset(seed=...)``) and of every model call."""
    iterations: int = 20
    """Rollouts in total, θ0 included."""
    theta0: Literal["center", "random"] = "center"
    """Initial θ: the centre of the θ box, or uniform at random (seeded)."""
    dataset: str | None = None
    """Dataset directory; ``None``: the shipped default of the task."""
    dataset_size: int | None = None
    """Use a seeded subset of this many examples (the paper's dataset-size ablation)."""
    icpi: ICPISettings = field(default_factory=ICPISettings)
    """ICPI loop settings."""


def initial_theta(task: Any, rng: np.random.Generator, how: str) -> np.ndarray:
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
        return 0.5 * (spec.low_array + spec.high_array)
    if how == "random":
        theta: np.ndarray = spec.sample(rng)
        return theta
    raise ValueError(f"theta0 must be 'center' or 'random', got {how!r}")


def load_dataset(cfg: RunConfig) -> ImprovementDataset:
    """The dataset of a run (default or given, optionally subset).

    Args:
        cfg: The run configuration.

    Returns:
        The dataset.
    """
    if cfg.dataset is None:
        ds = load_default_dataset(cfg.task)
    else:
        ds = ImprovementDataset.load(Path(cfg.dataset), task_id=cfg.task)
    if cfg.dataset_size is not None:
        ds = ds.subset(cfg.dataset_size, seed=cfg.seed)
    return ds


def run_icpi(
    cfg: RunConfig,
    out: Path,
    llm: LLMConfig | None = None,
    sampler: Sampler | None = None,
    task: SkillTask | None = None,
    instance: Any = None,
) -> dict[str, Any]:
    """Run (or resume) one method (``cfg.method``, ICPI by default) on one task instance.

    Args:
        cfg: What to run.
        out: Run directory (resumed when it holds the same run).
        llm: Model endpoint and sampling; ``None`` resolves the default (embedded) one.
        sampler: Use this sampler instead of a model client (tests, dry runs).
        task: The task to run on (e.g. the real arm's adapter); ``None`` builds the
            simulated task ``cfg.task``.
        instance: The instance (needs ``goal``, and ``physics_dict`` when known); ``None``
            draws one from ``cfg.seed`` as ``env.reset(seed=cfg.seed)`` does.

    Returns:
        The summary (also written to ``summary.json``).
    """
    llm = llm or LLMConfig.from_sources()
    settings = dataclasses.replace(cfg.icpi, chat=llm.mode == "chat")
    cfg = dataclasses.replace(cfg, icpi=settings)
    task = task if task is not None else make_task(cfg.task)
    rng = np.random.default_rng(cfg.seed)
    if instance is None:
        instance = task.sample_instance(rng)
    theta0 = initial_theta(task, rng, cfg.theta0)
    uses_llm = cfg.method == "icpi" and sampler is None
    config = {
        "run": dataclasses.asdict(cfg),
        "llm": llm.public_dict() if uses_llm else None,
        "sampler": type(sampler).__name__ if sampler is not None else None,
        "instance": {
            "goal": list(instance.goal),
            "physics": getattr(instance, "physics_dict", None),
        },
        "theta0": theta0,
        "theta_names": task.theta_spec.names,
        "theta_units": task.theta_spec.units,
    }
    run_dir = RunDir.open(out, config, seed=cfg.seed)
    records_file = run_dir.records_file
    client = None
    if uses_llm:
        client = LLMClient(dataclasses.replace(llm, log_path=run_dir.llm_log_file))
        sampler = LLMSampler(
            client, max_tokens=ANSWER_MAX_TOKENS, stop=["\n"], resample_temperature=0.7
        )
    improver = make_improver(cfg, task, instance, theta0, sampler, run_dir)
    previous = read_jsonl(records_file)
    t0 = time.perf_counter()
    try:
        kept = improver.restore(previous)
        if kept:
            log.info("resuming %s at iteration %d", run_dir.path, len(kept))
        write_jsonl(records_file, kept)  # drops a torn line, or adds what the buffer holds
        records = drive(
            improver,
            task,
            instance,
            cfg.iterations,
            done=kept,
            on_record=lambda r: append_jsonl(records_file, r),
        )
    finally:
        if client is not None:
            client.close()
    summary = summarise_records(cfg, records)
    summary["wall_s_this_session"] = time.perf_counter() - t0
    (run_dir.path / "summary.json").write_text(json.dumps(jsonable(summary), indent=2) + "\n")
    return summary


def make_improver(
    cfg: RunConfig,
    task: SkillTask,
    instance: Any,
    theta0: np.ndarray,
    sampler: Sampler | None,
    run_dir: RunDir,
) -> Improver:
    """Build the method of a run.

    Args:
        cfg: The run configuration (``cfg.method`` picks the method).
        task: The task.
        instance: The instance.
        theta0: Initial θ, shared by every method.
        sampler: The model sampler (ICPI only).
        run_dir: The run directory (ICPI keeps its experience buffer there).

    Returns:
        The improver.

    Raises:
        ValueError: On an unknown method.
    """
    if cfg.method == "icpi":
        assert sampler is not None
        return ICPIImprover(
            task,
            instance,
            load_dataset(cfg),
            sampler,
            theta0,
            settings=cfg.icpi,
            buffer=run_dir.buffer(),
            seed=cfg.seed,
        )
    if cfg.method == "random":
        return RandomShooting(task, theta0, cfg.seed)
    if cfg.method == "bo":
        return BayesianOptimisation(task, theta0, cfg.seed)
    if cfg.method == "cmaes":
        return CMAES(task, theta0, cfg.seed)
    if cfg.method in ("knn5", "lknn20"):
        linear = cfg.method == "lknn20"
        k = 20 if linear else 5
        return NeighbourCorrection(
            task, theta0, load_dataset(cfg), k=k, linear=linear, feature=cfg.icpi.feature
        )
    raise ValueError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")


def summarise_records(cfg: RunConfig, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Final figures of a run.

    Args:
        cfg: The run configuration.
        records: All records.

    Returns:
        Costs (initial, final, best), success, answer sources, parse failures, mean prompt
        tokens per model call and model seconds per iteration (ICPI).
    """
    costs = [r["cost"] for r in records]
    queried = [r for r in records if r.get("model_calls")]
    calls = sum(r["model_calls"] for r in queried)
    sources: dict[str, int] = {}
    for r in records[1:]:
        sources[r.get("source", cfg.method)] = sources.get(r.get("source", cfg.method), 0) + 1
    return {
        "task": cfg.task,
        "method": cfg.method,
        "seed": cfg.seed,
        "iterations": len(records),
        "initial_cost": costs[0],
        "final_cost": costs[-1],
        "best_cost": min(costs),
        "success": min(costs) < SUCCESS_TOLERANCE,
        "sources": sources,
        "parse_failures": sum(len(r.get("parse_errors", [])) for r in records),
        "mean_prompt_tokens": (
            sum(r["prompt_tokens"] for r in queried) / calls if calls else math.nan
        ),
        "model_s_per_iteration": (
            float(np.mean([r["model_s"] for r in queried])) if queried else math.nan
        ),
    }
