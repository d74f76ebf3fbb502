"""One ICPI run on one simulated task instance, written to a self-explaining run directory."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from icpi.core import LLMSampler, Sampler
from icpi.core.records import jsonable
from icpi.core.rundir import RunDir
from icpi.envs import make_task
from icpi.llm import LLMClient, LLMConfig
from icpi.manipulation.dataset import ImprovementDataset, load_default_dataset
from icpi.manipulation.improver import ICPIImprover, ICPISettings, SkillTask, record_of

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


def _json_line(record: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(dict(record)), sort_keys=True) + "\n"


def write_records(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Atomically replace a ``records.jsonl`` file.

    Args:
        path: The file.
        records: All records.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(_json_line(r) for r in records))
    os.replace(tmp, path)


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record to a ``records.jsonl`` file (flushed before returning).

    Args:
        path: The file.
        record: The record.
    """
    with open(path, "a") as fh:
        fh.write(_json_line(record))


def run_icpi(
    cfg: RunConfig,
    out: Path,
    llm: LLMConfig | None = None,
    sampler: Sampler | None = None,
    task: SkillTask | None = None,
    instance: Any = None,
) -> dict[str, Any]:
    """Run (or resume) ICPI on one task instance.

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
    config = {
        "run": dataclasses.asdict(cfg),
        "llm": llm.public_dict() if sampler is None else {"sampler": type(sampler).__name__},
        "instance": {
            "goal": list(instance.goal),
            "physics": getattr(instance, "physics_dict", None),
        },
        "theta0": theta0,
        "theta_names": task.theta_spec.names,
        "theta_units": task.theta_spec.units,
    }
    run_dir = RunDir.open(out, config, seed=cfg.seed)
    records = run_dir.path / "records.jsonl"
    client = None
    if sampler is None:
        client = LLMClient(dataclasses.replace(llm, log_path=run_dir.llm_log_file))
        sampler = LLMSampler(client, max_tokens=ANSWER_MAX_TOKENS, stop=["\n"])
    buffer = run_dir.buffer()
    improver = ICPIImprover(
        task,
        instance,
        load_dataset(cfg),
        sampler,
        theta0,
        settings=settings,
        buffer=buffer,
        seed=cfg.seed,
    )
    if len(buffer):
        log.info("resuming %s at iteration %d", run_dir.path, len(buffer))
    # The buffer is the source of truth: records.jsonl is rebuilt from it on resume.
    write_records(records, (record_of(a) for a in buffer.attempts))
    t0 = time.perf_counter()
    try:
        attempts = improver.run(
            cfg.iterations, on_attempt=lambda a: append_record(records, record_of(a))
        )
    finally:
        if client is not None:
            client.close()
    costs = [a.info["cost"] for a in attempts]
    model_attempts = [a for a in attempts if a.prompt is not None]
    summary = {
        "task": cfg.task,
        "method": cfg.method,
        "seed": cfg.seed,
        "iterations": len(attempts),
        "initial_cost": costs[0],
        "final_cost": costs[-1],
        "best_cost": min(costs),
        "success": min(costs) < 0.005,
        "sources": {s: sum(a.source == s for a in attempts) for s in ("model", "fallback")},
        "parse_failures": sum(len([e for e in a.parse_errors if e]) for a in attempts),
        "mean_prompt_tokens": (
            float(
                np.mean([a.llm["prompt_tokens"] / max(1, a.llm["calls"]) for a in model_attempts])
            )
            if model_attempts
            else math.nan
        ),
        "model_s_per_iteration": (
            float(np.mean([a.timing["model_s"] for a in model_attempts]))
            if model_attempts
            else math.nan
        ),
        "wall_s_this_session": time.perf_counter() - t0,
    }
    (run_dir.path / "summary.json").write_text(json.dumps(jsonable(summary), indent=2) + "\n")
    return summary
