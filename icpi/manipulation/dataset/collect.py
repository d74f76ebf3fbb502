"""Collecting a dataset: local threads or Ray, resumable per instance; the shipped defaults."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from icpi.core.files import atomic_path
from icpi.envs import TASKS, load_task, portable_task_spec, task_spec_of
from icpi.envs.spec import SkillTask
from icpi.errors import ConfigError, UserError
from icpi.jobs import BACKENDS, Lane, run_jobs
from icpi.manipulation.dataset import design as _design
from icpi.manipulation.dataset.design import DEFAULT_DESIGN, SamplingDesign, select_examples
from icpi.manipulation.dataset.table import (
    FORMAT_VERSION,
    DatasetError,
    ImprovementDataset,
    build_meta,
)

if TYPE_CHECKING:  # MuJoCo is imported by the tasks themselves, when they are built
    pass

log = logging.getLogger(__name__)

DEFAULT_SIZE = 300
ROLLOUTS_DIR = ".rollouts"
DESIGN_FILE = "design.json"


# ---------------------------------------------------------------------------- defaults
def datasets_root() -> Path:
    """Root of the shipped datasets: ``$ICPI_DATASETS``, else the package's own copy.

    The datasets are package data (``icpi/datasets``, also reachable as ``datasets/`` at
    the top of a checkout), so an installed wheel, an editable install and a colcon build
    all find them.
    """
    env = os.environ.get("ICPI_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "datasets"


def default_dataset_dir(task_id: str) -> Path:
    """Directory of a task's default dataset.

    Args:
        task_id: Task id.

    Returns:
        ``<repo>/datasets/<task_id>``, or ``$ICPI_DATASETS/<task_id>`` when that is set.
    """
    return datasets_root() / task_id


def load_default_dataset(task_id: str) -> ImprovementDataset:
    """Load a task's shipped dataset.

    Args:
        task_id: Task id.

    Returns:
        The dataset.

    Raises:
        DatasetError: If it is missing or invalid (the message names the command that
            builds it).
    """
    if task_id not in TASKS:
        raise DatasetError(
            f"no shipped dataset for task {task_id!r} (they exist for {', '.join(TASKS)});"
            " build one with `icpi collect --task SPEC --out DIR` and pass --dataset DIR"
        )
    return ImprovementDataset.load(default_dataset_dir(task_id), task_id=task_id)


def regeneration_command(task_id: str, out: Path | str, size: int, seed: int) -> str:
    """The canonical ``icpi collect`` command line recorded in a sidecar.

    Options that do not change the content (workers, backend, progress) are left out.

    Args:
        task_id: Task id.
        out: Output directory as given.
        size: Number of examples.
        seed: Seed.

    Returns:
        The command line.
    """
    return f"icpi collect --task {task_id} --out {out} --size {size} --seed {seed}"


def collect_dataset(
    task_id: str | SkillTask,
    out: Path,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    workers: int | None = None,
    backend: str = "local",
    progress: bool = True,
    command: str | None = None,
    keep_rollouts: bool = False,
    design: SamplingDesign = DEFAULT_DESIGN,
) -> ImprovementDataset:
    """Build (or finish building) a task's improvement dataset and save it in ``out``.

    Finished instances are kept under ``out/.rollouts`` and skipped when the collection
    is run again after an interruption; the folder is removed once the dataset is saved
    (unless ``keep_rollouts``). The result depends only on (task, size, seed, design).

    Args:
        task_id: A task spec (shipped id, ``module:Class``, ``file.py:Class``) or a task
            object (your own; the Ray backend needs a spec, which its workers load).
        out: Output directory.
        size: Number of examples N.
        seed: Seed of instances, rollouts and selection.
        workers: Threads (local) or Ray CPUs; ``None`` uses every core.
        backend: ``"local"`` (threads of this process) or ``"ray"`` (one Ray task per
            instance, on the cluster of ``RAY_ADDRESS`` or a local Ray); see
            :func:`icpi.jobs.run_jobs`.
        progress: Show a progress bar (only on a terminal).
        command: Command line to record; ``None`` records the canonical one.
        keep_rollouts: Keep ``out/.rollouts`` after saving.
        design: Sampling design.

    Returns:
        The saved dataset.

    Raises:
        ValueError: On an unknown task or backend or a size < 1.
        DatasetError: If ``out/.rollouts`` was left by a different collection, or the
            instances yield fewer candidate pairs than ``size``.
        UserError: If the Ray backend is asked for and Ray is not installed.
        WorkerLostError: If Ray workers kept dying (exit 3; rerunning resumes).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    out = Path(out)
    spec = task_id if isinstance(task_id, str) else None
    task = load_task(task_id) if isinstance(task_id, str) else task_id
    if backend == "ray" and spec is None:
        raise UserError("the Ray backend needs the task as a spec (module:Class), not an object")
    task_id = task.task_id
    recorded = portable_task_spec(spec) if spec is not None else task_spec_of(task)
    n_instances = design.n_instances(size)
    rollouts_dir = out / ROLLOUTS_DIR
    _prepare_rollouts_dir(rollouts_dir, task_id, seed, design)
    todo = [i for i in range(n_instances) if _read_instance(rollouts_dir, i) is None]
    log.info(
        "%s: %d instances (%d done), %d rollouts each, backend %s",
        task_id,
        n_instances,
        n_instances - len(todo),
        design.rollouts_per_instance,
        backend,
    )
    if todo:
        from tqdm import tqdm

        bar = tqdm(
            total=n_instances,
            initial=n_instances - len(todo),
            desc=f"collect {task_id}",
            unit="instance",
            disable=not progress or not sys.stderr.isatty(),
        )
        nworkers = workers or os.cpu_count() or 1
        if backend == "ray":  # each worker loads the task from its spec
            assert spec is not None
            job = functools.partial(_instance_job, spec, seed, design=design)
            lane = Lane(job, todo, limit=nworkers)
        else:  # threads of this process share the task (its rollouts are thread-safe)
            job = functools.partial(_instance, task, seed, design=design)
            lane = Lane(job, todo, limit=nworkers, shared=True)
        try:
            for index, arrays in run_jobs(
                [lane], backend, nworkers, name=lambda i: f"instance {i}"
            ):
                _write_instance(rollouts_dir, index, arrays)
                bar.update(1)
        finally:
            bar.close()
    per_instance = []
    for i in range(n_instances):
        stored = _read_instance(rollouts_dir, i)
        if stored is None:  # pragma: no cover - written just above
            raise DatasetError(f"{rollouts_dir}: instance {i} is missing after collection")
        per_instance.append(stored)
    dataset = select_examples(task, per_instance, size, seed, design)
    dataset.meta = build_meta(
        task,
        size,
        seed,
        design,
        n_instances,
        command if command is not None else regeneration_command(recorded, out, size, seed),
        task_spec=recorded,
    )
    dataset.save(out)
    if not keep_rollouts:
        shutil.rmtree(rollouts_dir, ignore_errors=True)
    log.info("%s: saved %d examples to %s", task_id, len(dataset), out)
    return dataset


def _instance(
    task: SkillTask, seed: int, index: int, design: SamplingDesign
) -> dict[str, np.ndarray]:
    """One instance's rollouts and candidate pairs (what its ``.rollouts`` file holds)."""
    return _design.collect_instance(task, seed, [index], design, nthread=1)[0]


_WORKER_TASKS: dict[str, SkillTask] = {}


def _instance_job(
    task_id: str, seed: int, index: int, design: SamplingDesign
) -> dict[str, np.ndarray]:
    """One instance in a Ray worker (the task object is cached per worker process)."""
    task = _WORKER_TASKS.get(task_id)
    if task is None:
        task = _WORKER_TASKS[task_id] = load_task(task_id)
    return _instance(task, seed, index, design)


# ---------------------------------------------------------------------------- .rollouts
def _prepare_rollouts_dir(directory: Path, task_id: str, seed: int, design: SamplingDesign) -> None:
    fingerprint = {
        "format_version": FORMAT_VERSION,
        "task": task_id,
        "seed": seed,
        "design": design.to_dict(),
    }
    path = directory / DESIGN_FILE
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            found = None
        if found != fingerprint:
            raise DatasetError(
                f"{directory} holds rollouts of a different collection ({found});"
                f" delete it or choose another --out to collect {task_id} with seed {seed}"
            )
        return
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")


def _instance_path(directory: Path, index: int) -> Path:
    return directory / f"instance_{index:05d}.npz"


def _write_instance(directory: Path, index: int, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(_instance_path(directory, index)) as tmp:
        savez: Any = np.savez
        with open(tmp, "wb") as fh:
            savez(fh, **arrays)


def _read_instance(directory: Path, index: int) -> dict[str, np.ndarray] | None:
    path = _instance_path(directory, index)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as err:  # a damaged file is redone, never trusted
        log.warning("%s is unreadable (%s); redoing that instance", path, err)
        path.unlink(missing_ok=True)
        return None
