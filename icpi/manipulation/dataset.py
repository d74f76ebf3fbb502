"""Improvement datasets D of ``(θ, e) → Δθ*`` examples, built without an LLM.

A dataset is collected per task from rollouts on sampled instances and **hindsight
relabelling**: for two rollouts a, b of the same instance, pretend that b's outcome was the
goal, g' = outcome_b; then e = outcome_a(g') − g' and Δθ* = θ_b − θ_a (θ_a + Δθ* = θ_b hits
g' exactly on that instance). ``outcome_a(g')`` is ``task.outcome(path_a, g')``: the final
position for slide and ball roll, the point of the tip's path closest to g' for rope swing.

Sampling design (per instance i, RNG ``SeedSequence([seed, 0, i])``, so every instance is
the same whatever the worker count, the backend or the order in which instances finish):

1. ``n_probe`` θ uniform in the box (global exploration);
2. ``n_anchor`` anchors: the probes whose outcome lies closest to the goal region (inside
   it, grown by ``goal_margin`` of its span on each side, counts as distance 0; ties go to
   the earlier probe);
3. one local perturbation per anchor and scale in ``local_scales``: θ = clip(anchor +
   N(0, (scale·span)²)) (local corrections near useful θ).

Candidates are all ordered pairs (a, b), a ≠ b, of one instance whose relabelled goal g'
lies in the grown goal region and whose error is not already a success
(‖e‖ ≥ ``min_error``). Selection (RNG ``SeedSequence([seed, 1])``) spreads the examples
over the normalised step size r = ‖Δθ*/span‖: candidates fall into bins with edges
``bin_edges``, each non-empty bin gets an equal share of N (the share of a bin that runs
short goes to the others), and within a bin candidates are taken in a random order that
visits every instance before taking a second example from any. The selected rows are
stored in (instance, a, b) order.

On disk a dataset is a directory with ``examples.parquet`` (flat columns, see
:data:`BASE_COLUMNS` and :meth:`ImprovementDataset.column_names`) and ``meta.json`` (task,
θ names/units/bounds, goal axes, the definition of e, size, seed, the sampling design,
package versions, the command line, the table's sha256). Nothing in either file depends
on the time or the machine, so the same command regenerates both bit for bit.

Collection is resumable: each finished instance's rollouts and candidate pairs are
written atomically to ``DIR/.rollouts/instance_NNNNN.npz`` and skipped on restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from icpi.core import rundir
from icpi.envs import TASKS, make_task
from icpi.envs.base import SUCCESS_TOLERANCE, Instance, Task

log = logging.getLogger(__name__)

FORMAT_NAME = "icpi-improvement-dataset"
FORMAT_VERSION = 1
DEFAULT_SIZE = 300
EXAMPLES_FILE = "examples.parquet"
META_FILE = "meta.json"
ROLLOUTS_DIR = ".rollouts"
DESIGN_FILE = "design.json"
BACKENDS = ("local", "ray")
GOAL_AXES = ("x", "y", "z")
# Integer columns, in table order, before the float blocks.
BASE_COLUMNS = ("instance", "seed", "rollout_a", "rollout_b")
# Float column blocks: prefix -> which names follow the dot.
THETA_BLOCKS = ("theta", "dtheta")
GOAL_BLOCKS = ("e", "outcome", "goal")
E_DEFINITION = (
    "Hindsight relabelling of two rollouts a, b of one instance: the relabelled goal is"
    " g' = outcome_b (b's outcome for the instance's own goal); e = outcome_a(g') - g', where"
    " outcome_a(g') = task.outcome(path of a, g') is the final xy position of the puck/ball"
    " (slide, ball-roll-gc) or the point of the rope tip's path closest to g' (rope-swing);"
    " dtheta = theta_b - theta_a; outcome = outcome_a(g'); goal = g'. Units: metres for e,"
    " outcome and goal; theta units as listed."
)
# Tolerance on θ bounds when validating a loaded table.
_BOUND_TOL = 1e-9


class DatasetError(ValueError):
    """A dataset file is missing, corrupt, or does not match what was asked for."""


@dataclass(frozen=True)
class SamplingDesign:
    """Parameters of the rollouts and of the selection (see the module docstring)."""

    examples_per_instance: int = 5
    """Instances = ceil(size / this): more instances, more spread of the hidden physics."""
    n_probe: int = 16
    """Uniform θ per instance."""
    n_anchor: int = 4
    """Probes that get local perturbations."""
    local_scales: tuple[float, ...] = (0.02, 0.05, 0.1)
    """Standard deviations of the perturbations, as fractions of each θ range."""
    goal_margin: float = 0.1
    """Growth of the goal region on each side, as a fraction of its span."""
    min_error: float = SUCCESS_TOLERANCE
    """Pairs whose ‖e‖ is below this [m] are dropped (θ_a already succeeds for g')."""
    bin_edges: tuple[float, ...] = (0.05, 0.15, 0.4)
    """Edges of the bins of r = ‖Δθ*/span‖ that share the selection equally."""

    @property
    def rollouts_per_instance(self) -> int:
        """Rollouts run on each instance."""
        return self.n_probe + self.n_anchor * len(self.local_scales)

    def n_instances(self, size: int) -> int:
        """Number of instances sampled for a dataset of ``size`` examples."""
        return max(1, math.ceil(size / self.examples_per_instance))

    def to_dict(self) -> dict[str, Any]:
        """The design as JSON-friendly values."""
        out = asdict(self)
        out["local_scales"] = list(self.local_scales)
        out["bin_edges"] = list(self.bin_edges)
        return out


DEFAULT_DESIGN = SamplingDesign()


# ---------------------------------------------------------------------------- dataset
@dataclass
class ImprovementDataset:
    """A table of improvement examples and its sidecar.

    Row j says: on instance ``instance[j]``, θ = ``theta[j]`` ended at ``outcome[j]`` with
    error ``e[j]`` = outcome − ``goal[j]``; ``theta[j] + dtheta[j]`` reaches ``goal[j]``.
    """

    task_id: str
    theta: np.ndarray
    """(N, d) float64, physical units."""
    e: np.ndarray
    """(N, g) float64 [m]: relative error of θ w.r.t. the relabelled goal."""
    dtheta: np.ndarray
    """(N, d) float64: Δθ* = θ_b − θ_a."""
    outcome: np.ndarray
    """(N, g) float64 [m]: absolute outcome of θ w.r.t. the relabelled goal."""
    goal: np.ndarray
    """(N, g) float64 [m]: the relabelled goal g'."""
    instance: np.ndarray
    """(N,) int64: instance index (its RNG is derived from (seed, index))."""
    physics: dict[str, np.ndarray]
    """Hidden physical parameter name -> (N,) values of the row's instance."""
    meta: dict[str, Any] = field(default_factory=dict)
    """The JSON sidecar content."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    """Other integer columns: ``seed``, ``rollout_a``, ``rollout_b`` (N,) int64."""

    def __len__(self) -> int:
        return int(self.theta.shape[0])

    # ------------------------------------------------------------------ columns
    @property
    def theta_names(self) -> list[str]:
        """θ parameter names, from the sidecar."""
        return list(self.meta["theta"]["names"])

    @property
    def goal_axes(self) -> list[str]:
        """Goal axis names, from the sidecar."""
        return list(self.meta["goal"]["axes"])

    @staticmethod
    def column_names(
        theta_names: Sequence[str], goal_axes: Sequence[str], physics_names: Sequence[str]
    ) -> list[str]:
        """All columns of the table, in order.

        Args:
            theta_names: θ parameter names.
            goal_axes: Goal axis names.
            physics_names: Hidden physical parameter names.

        Returns:
            Column names.
        """
        cols = list(BASE_COLUMNS)
        cols += [f"theta.{n}" for n in theta_names]
        cols += [f"e.{a}" for a in goal_axes]
        cols += [f"dtheta.{n}" for n in theta_names]
        cols += [f"outcome.{a}" for a in goal_axes]
        cols += [f"goal.{a}" for a in goal_axes]
        cols += [f"physics.{p}" for p in physics_names]
        return cols

    def _columns(self) -> dict[str, np.ndarray]:
        n = len(self)
        cols: dict[str, np.ndarray] = {"instance": self.instance.astype(np.int64)}
        for key in BASE_COLUMNS[1:]:
            cols[key] = self.extra.get(key, np.full(n, -1, dtype=np.int64)).astype(np.int64)
        blocks = {
            "theta": self.theta,
            "e": self.e,
            "dtheta": self.dtheta,
            "outcome": self.outcome,
            "goal": self.goal,
        }
        for prefix, arr in blocks.items():
            names = self.theta_names if prefix in THETA_BLOCKS else self.goal_axes
            for k, name in enumerate(names):
                cols[f"{prefix}.{name}"] = np.ascontiguousarray(arr[:, k], dtype=np.float64)
        for name in sorted(self.physics):
            cols[f"physics.{name}"] = np.asarray(self.physics[name], dtype=np.float64)
        return cols

    # ------------------------------------------------------------------ subsets
    def take(self, rows: np.ndarray) -> ImprovementDataset:
        """The dataset restricted to some rows (in the given order).

        Args:
            rows: Row indices.

        Returns:
            A new dataset; its sidecar's ``size`` is updated.
        """
        meta = json.loads(json.dumps(self.meta))
        meta["size"] = len(rows)
        meta.pop("examples_sha256", None)
        return ImprovementDataset(
            task_id=self.task_id,
            theta=self.theta[rows].copy(),
            e=self.e[rows].copy(),
            dtheta=self.dtheta[rows].copy(),
            outcome=self.outcome[rows].copy(),
            goal=self.goal[rows].copy(),
            instance=self.instance[rows].copy(),
            physics={k: v[rows].copy() for k, v in self.physics.items()},
            meta=meta,
            extra={k: v[rows].copy() for k, v in self.extra.items()},
        )

    def subset(self, size: int, seed: int = 0) -> ImprovementDataset:
        """A deterministic random subset (for the dataset-size ablation).

        Rows are drawn without replacement with ``np.random.default_rng(seed)`` and kept in
        their original order, so the same (size, seed) always gives the same subset.

        Args:
            size: Number of examples, 1 ≤ size ≤ len(self).
            seed: Seed of the draw.

        Returns:
            The subset; its sidecar records ``subset = {"of": len(self), "seed": seed}``.

        Raises:
            ValueError: If size is out of range.
        """
        if not 1 <= size <= len(self):
            raise ValueError(f"subset size must be in 1..{len(self)}, got {size}")
        rows = np.sort(np.random.default_rng(seed).permutation(len(self))[:size])
        sub = self.take(rows)
        sub.meta["subset"] = {"of": len(self), "seed": int(seed)}
        return sub

    # ------------------------------------------------------------------ files
    def save(self, directory: Path) -> None:
        """Write ``examples.parquet`` and ``meta.json`` (each atomically).

        The sidecar gets the table's sha256 and its column list; both files are
        byte-identical for identical content.

        Args:
            directory: Target directory (created if missing).
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cols = self._columns()
        table = pa.table({k: pa.array(v) for k, v in cols.items()})
        parquet_path = directory / EXAMPLES_FILE
        with _atomic_path(parquet_path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        self.meta["size"] = len(self)
        self.meta["columns"] = list(cols)
        self.meta["examples_sha256"] = _sha256(parquet_path)
        text = json.dumps(self.meta, indent=2, ensure_ascii=False) + "\n"
        with _atomic_path(directory / META_FILE) as tmp:
            tmp.write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, task_id: str | None = None) -> ImprovementDataset:
        """Read and validate a dataset directory.

        Checks: the sidecar is valid JSON of this format and (when given) of ``task_id``;
        its θ names/units/bounds match the task's; the table reads; it has exactly the
        expected columns with the expected types; it has ``size`` rows, no missing or
        non-finite values, θ and θ + Δθ* inside the bounds, e = outcome − goal; and its
        sha256 is the one the sidecar recorded.

        Args:
            directory: Directory holding ``examples.parquet`` and ``meta.json``.
            task_id: Expected task; ``None`` accepts the sidecar's.

        Returns:
            The dataset.

        Raises:
            DatasetError: With the file, the problem and how to regenerate it.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory = Path(directory)
        meta_path = directory / META_FILE
        parquet_path = directory / EXAMPLES_FILE
        hint = _regen_hint(task_id, directory)
        if not meta_path.is_file():
            raise DatasetError(f"{meta_path}: no dataset sidecar here. {hint}")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DatasetError(f"{meta_path}: not valid JSON ({err}). {hint}") from err
        _check_meta(meta, meta_path, task_id, hint)
        task = make_task(meta["task"])
        hint = _regen_hint(meta["task"], directory)
        _check_meta_matches_task(meta, task, meta_path, hint)
        if not parquet_path.is_file():
            raise DatasetError(f"{parquet_path}: missing (the sidecar is there). {hint}")
        try:
            table = pq.read_table(parquet_path)
        except (pa.ArrowException, OSError, ValueError) as err:
            raise DatasetError(
                f"{parquet_path}: cannot be read as Parquet ({err}). {hint}"
            ) from err

        theta_names = list(meta["theta"]["names"])
        axes = list(meta["goal"]["axes"])
        physics_names = sorted(task.physics_ranges)
        expected = cls.column_names(theta_names, axes, physics_names)
        present = list(table.column_names)
        missing = [c for c in expected if c not in present]
        unexpected = [c for c in present if c not in expected]
        if missing or unexpected:
            raise DatasetError(
                f"{parquet_path}: columns do not match the {meta['task']} schema"
                f" (missing: {missing or 'none'}; unexpected: {unexpected or 'none'}). {hint}"
            )
        cols: dict[str, np.ndarray] = {}
        for name in expected:
            column = table.column(name)
            want = pa.int64() if name in BASE_COLUMNS else pa.float64()
            if column.type != want:
                raise DatasetError(
                    f"{parquet_path}: column {name!r} has type {column.type}, expected {want}."
                    f" {hint}"
                )
            if column.null_count:
                raise DatasetError(
                    f"{parquet_path}: column {name!r} has {column.null_count} missing values."
                    f" {hint}"
                )
            values = column.to_numpy()
            if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                bad = int(np.count_nonzero(~np.isfinite(values)))
                raise DatasetError(
                    f"{parquet_path}: column {name!r} has {bad} non-finite values (NaN/inf). {hint}"
                )
            cols[name] = np.array(values)
        n = table.num_rows
        if n != meta["size"] or n == 0:
            raise DatasetError(
                f"{parquet_path}: {n} rows, but {meta_path.name} says size={meta['size']}. {hint}"
            )

        def block(prefix: str, names: Sequence[str]) -> np.ndarray:
            return np.column_stack([cols[f"{prefix}.{x}"] for x in names]).astype(np.float64)

        ds = cls(
            task_id=meta["task"],
            theta=block("theta", theta_names),
            e=block("e", axes),
            dtheta=block("dtheta", theta_names),
            outcome=block("outcome", axes),
            goal=block("goal", axes),
            instance=cols["instance"].astype(np.int64),
            physics={p: cols[f"physics.{p}"] for p in physics_names},
            meta=meta,
            extra={k: cols[k].astype(np.int64) for k in BASE_COLUMNS[1:]},
        )
        low, high = task.theta_spec.low_array, task.theta_spec.high_array
        for label, arr in (("theta", ds.theta), ("theta + dtheta", ds.theta + ds.dtheta)):
            if np.any(arr < low - _BOUND_TOL) or np.any(arr > high + _BOUND_TOL):
                raise DatasetError(f"{parquet_path}: {label} leaves the θ bounds. {hint}")
        if not np.allclose(ds.e, ds.outcome - ds.goal, rtol=0.0, atol=1e-9):
            raise DatasetError(f"{parquet_path}: e != outcome - goal. {hint}")
        digest = _sha256(parquet_path)
        if meta.get("examples_sha256") not in (None, digest):
            raise DatasetError(
                f"{parquet_path}: sha256 {digest[:12]}… does not match the"
                f" {meta['examples_sha256'][:12]}… recorded in {meta_path.name}: the table"
                f" and its sidecar come from different runs. {hint}"
            )
        return ds


# ---------------------------------------------------------------------------- defaults
def datasets_root() -> Path:
    """Root of the shipped datasets: ``$ICPI_DATASETS`` or ``<repo>/datasets``."""
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
        raise DatasetError(f"unknown task {task_id!r}; choose one of {', '.join(TASKS)}")
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


# ---------------------------------------------------------------------------- collection
def instance_rng(seed: int, index: int) -> np.random.Generator:
    """RNG of one instance, derived from (seed, instance index) only.

    Args:
        seed: Dataset seed.
        index: Instance index.

    Returns:
        The generator (instance draw, probes and perturbations, in that order).
    """
    return np.random.default_rng(np.random.SeedSequence([seed, 0, index]))


def collect_dataset(
    task_id: str,
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
        task_id: Task id.
        out: Output directory.
        size: Number of examples N.
        seed: Seed of instances, rollouts and selection.
        workers: Threads (local) or Ray CPUs; ``None`` uses every core.
        backend: ``"local"`` (MuJoCo threads) or ``"ray"`` (one Ray task per instance).
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
        ImportError: If the Ray backend is asked for and Ray is not installed.
    """
    if task_id not in TASKS:
        raise ValueError(f"unknown task {task_id!r}; choose one of {', '.join(TASKS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    out = Path(out)
    task = make_task(task_id)
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
        try:
            if backend == "ray":
                runner = _run_ray(task_id, seed, todo, design, workers)
            else:
                runner = _run_local(task, seed, todo, design, workers)
            for index, arrays in runner:
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
    dataset = _select(task, per_instance, size, seed, design)
    dataset.meta = _build_meta(
        task,
        size,
        seed,
        design,
        n_instances,
        command if command is not None else regeneration_command(task_id, out, size, seed),
    )
    dataset.save(out)
    if not keep_rollouts:
        shutil.rmtree(rollouts_dir, ignore_errors=True)
    log.info("%s: saved %d examples to %s", task_id, len(dataset), out)
    return dataset


def collect_instance(
    task: Task, seed: int, indices: Sequence[int], design: SamplingDesign, nthread: int | None
) -> list[dict[str, np.ndarray]]:
    """Run and relabel the rollouts of some instances (batched across them).

    Args:
        task: The task.
        seed: Dataset seed.
        indices: Instance indices.
        design: Sampling design.
        nthread: MuJoCo threads for the batches.

    Returns:
        Per instance, the arrays stored in its ``.rollouts`` file.
    """
    spec = task.theta_spec
    low, high = spec.low_array, spec.high_array
    span = high - low
    region_lo, region_hi = _goal_region(task, design)
    rngs = [instance_rng(seed, i) for i in indices]
    instances = [task.sample_instance(rng) for rng in rngs]
    probes = [rng.uniform(low, high, size=(design.n_probe, spec.dim)) for rng in rngs]
    first = task.rollout_batch(
        [inst for inst in instances for _ in range(design.n_probe)],
        np.concatenate(probes),
        nthread=nthread,
    )
    locals_: list[np.ndarray] = []
    for k, rng in enumerate(rngs):
        outs = np.array([r.outcome for r in first[k * design.n_probe : (k + 1) * design.n_probe]])
        dist = np.linalg.norm(
            np.maximum(0.0, np.maximum(region_lo - outs, outs - region_hi)), axis=1
        )
        anchors = probes[k][np.argsort(dist, kind="stable")[: design.n_anchor]]
        rows = [
            np.clip(anchor + rng.normal(0.0, scale * span), low, high)
            for anchor in anchors
            for scale in design.local_scales
        ]
        locals_.append(np.array(rows).reshape(-1, spec.dim))
    n_local = design.n_anchor * len(design.local_scales)
    second = task.rollout_batch(
        [inst for inst in instances for _ in range(n_local)],
        np.concatenate(locals_),
        nthread=nthread,
    )
    results = []
    for k, instance in enumerate(instances):
        rollouts = (
            first[k * design.n_probe : (k + 1) * design.n_probe]
            + second[k * n_local : (k + 1) * n_local]
        )
        results.append(_relabel(task, instance, rollouts, design, region_lo, region_hi))
    return results


def _relabel(
    task: Task,
    instance: Instance,
    rollouts: Sequence[Any],
    design: SamplingDesign,
    region_lo: np.ndarray,
    region_hi: np.ndarray,
) -> dict[str, np.ndarray]:
    theta = np.array([r.theta for r in rollouts])
    outcome = np.array([r.outcome for r in rollouts])
    m = len(rollouts)
    pair_a: list[int] = []
    pair_b: list[int] = []
    pair_outcome: list[np.ndarray] = []
    for b in range(m):
        goal = outcome[b]
        if np.any(goal < region_lo) or np.any(goal > region_hi):
            continue
        for a in range(m):
            if a == b:
                continue
            out_a = task.outcome(rollouts[a].trajectory, goal)
            if float(np.linalg.norm(out_a - goal)) < design.min_error:
                continue
            pair_a.append(a)
            pair_b.append(b)
            pair_outcome.append(out_a)
    g = task.goal_dim
    return {
        "theta": theta,
        "outcome": outcome,
        "cost": np.array([r.cost for r in rollouts]),
        "goal": instance.goal_array,
        "physics_names": np.array([k for k, _ in instance.physics]),
        "physics": np.array([v for _, v in instance.physics], dtype=np.float64),
        "pair_a": np.array(pair_a, dtype=np.int64),
        "pair_b": np.array(pair_b, dtype=np.int64),
        "pair_outcome": np.array(pair_outcome, dtype=np.float64).reshape(-1, g),
    }


def _goal_region(task: Task, design: SamplingDesign) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(task.goal_low, dtype=np.float64)
    hi = np.asarray(task.goal_high, dtype=np.float64)
    margin = design.goal_margin * (hi - lo)
    return lo - margin, hi + margin


def _run_local(
    task: Task, seed: int, todo: Sequence[int], design: SamplingDesign, workers: int | None
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    nthread = workers or os.cpu_count() or 1
    chunk = max(1, nthread)
    for start in range(0, len(todo), chunk):
        indices = list(todo[start : start + chunk])
        yield from zip(indices, collect_instance(task, seed, indices, design, nthread), strict=True)


_WORKER_TASKS: dict[str, Task] = {}


def _instance_job(
    task_id: str, seed: int, index: int, design: SamplingDesign
) -> dict[str, np.ndarray]:
    """One instance in a Ray worker (the task object is cached per worker process)."""
    task = _WORKER_TASKS.get(task_id)
    if task is None:
        task = _WORKER_TASKS[task_id] = make_task(task_id)
    return collect_instance(task, seed, [index], design, nthread=1)[0]


def _run_ray(
    task_id: str, seed: int, todo: Sequence[int], design: SamplingDesign, workers: int | None
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            "the Ray backend needs Ray: pip install 'icpi[ray]' (or use --backend local)"
        ) from err
    started = False
    if not ray.is_initialized():
        ray.init(
            num_cpus=workers or os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        started = True
    try:
        job = ray.remote(num_cpus=1)(_instance_job)
        pending = {job.remote(task_id, seed, i, design): i for i in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    finally:
        if started:
            ray.shutdown()


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
    with _atomic_path(path) as tmp:
        tmp.write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")


def _instance_path(directory: Path, index: int) -> Path:
    return directory / f"instance_{index:05d}.npz"


def _write_instance(directory: Path, index: int, arrays: dict[str, np.ndarray]) -> None:
    with _atomic_path(_instance_path(directory, index)) as tmp:
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


# ---------------------------------------------------------------------------- selection
def select_rows(
    r: np.ndarray, instance: np.ndarray, size: int, edges: Sequence[float], seed: int
) -> np.ndarray:
    """Pick ``size`` candidates spread over bins of r and over instances.

    Args:
        r: Normalised step size of each candidate.
        instance: Instance of each candidate.
        size: How many to pick.
        edges: Bin edges of r.
        seed: Dataset seed (the selection uses the stream ``SeedSequence([seed, 1])``).

    Returns:
        Sorted indices of the picked candidates.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    bins = np.digitize(r, np.asarray(edges, dtype=np.float64))
    members = [np.flatnonzero(bins == k) for k in range(len(edges) + 1)]
    counts = [len(m) for m in members]
    alloc = [0] * len(members)
    remaining = size
    open_bins = [k for k, c in enumerate(counts) if c > 0]
    while remaining > 0 and open_bins:
        share, extra = divmod(remaining, len(open_bins))
        for j, k in enumerate(open_bins):
            take = min(counts[k] - alloc[k], share + (1 if j < extra else 0))
            alloc[k] += take
            remaining -= take
        open_bins = [k for k in open_bins if alloc[k] < counts[k]]
    chosen = []
    for k, idx in enumerate(members):
        order = rng.permutation(idx)
        seen: dict[int, int] = {}
        visit = np.empty(len(order), dtype=np.int64)
        for j, row in enumerate(order):
            inst = int(instance[row])
            visit[j] = seen.get(inst, 0)
            seen[inst] = visit[j] + 1
        chosen.append(order[np.argsort(visit, kind="stable")[: alloc[k]]])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def _select(
    task: Task,
    per_instance: Sequence[dict[str, np.ndarray]],
    size: int,
    seed: int,
    design: SamplingDesign,
) -> ImprovementDataset:
    span = task.theta_spec.high_array - task.theta_spec.low_array
    physics_names = sorted(task.physics_ranges)
    rows: dict[str, list[np.ndarray]] = {
        k: [] for k in ("theta", "dtheta", "outcome", "goal", "instance", "a", "b", "physics")
    }
    for index, arr in enumerate(per_instance):
        if list(arr["physics_names"]) != physics_names:
            raise DatasetError(f"instance {index}: physics {arr['physics_names']} unexpected")
        a, b = arr["pair_a"], arr["pair_b"]
        rows["theta"].append(arr["theta"][a])
        rows["dtheta"].append(arr["theta"][b] - arr["theta"][a])
        rows["outcome"].append(arr["pair_outcome"])
        rows["goal"].append(arr["outcome"][b])
        rows["instance"].append(np.full(len(a), index, dtype=np.int64))
        rows["a"].append(a)
        rows["b"].append(b)
        rows["physics"].append(np.tile(arr["physics"], (len(a), 1)))
    cat = {k: np.concatenate(v) for k, v in rows.items()}
    n_cand = len(cat["instance"])
    if n_cand < size:
        raise DatasetError(
            f"{task.task_id}: only {n_cand} candidate pairs for {size} examples; use more"
            " instances (a smaller SamplingDesign.examples_per_instance) or a smaller size"
        )
    r = np.linalg.norm(cat["dtheta"] / span, axis=1)
    pick = select_rows(r, cat["instance"], size, design.bin_edges, seed)
    outcome = cat["outcome"][pick]
    goal = cat["goal"][pick]
    return ImprovementDataset(
        task_id=task.task_id,
        theta=cat["theta"][pick],
        e=outcome - goal,
        dtheta=cat["dtheta"][pick],
        outcome=outcome,
        goal=goal,
        instance=cat["instance"][pick],
        physics={p: cat["physics"][pick, j] for j, p in enumerate(physics_names)},
        meta={},
        extra={
            "seed": np.full(len(pick), seed, dtype=np.int64),
            "rollout_a": cat["a"][pick],
            "rollout_b": cat["b"][pick],
        },
    )


# ---------------------------------------------------------------------------- sidecar
def package_versions() -> dict[str, str | None]:
    """Versions of the packages that shape a dataset's bytes (all are dependencies)."""
    return rundir.package_versions(("icpi", "numpy", "mujoco", "pyarrow"))


def _build_meta(
    task: Task, size: int, seed: int, design: SamplingDesign, n_instances: int, command: str
) -> dict[str, Any]:
    spec = task.theta_spec
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "task": task.task_id,
        "theta": {
            "names": list(spec.names),
            "units": list(spec.units),
            "low": list(spec.low),
            "high": list(spec.high),
        },
        "goal": {
            "dim": task.goal_dim,
            "axes": list(GOAL_AXES[: task.goal_dim]),
            "unit": "m",
            "goal_conditioned": task.goal_conditioned,
            "fixed_goal": list(task.fixed_goal),
            "region_low": list(task.goal_low),
            "region_high": list(task.goal_high),
        },
        "physics": {k: list(task.physics_ranges[k]) for k in sorted(task.physics_ranges)},
        "e_definition": E_DEFINITION,
        "size": size,
        "seed": seed,
        "sampling": {
            **design.to_dict(),
            "n_instances": n_instances,
            "rollouts_per_instance": design.rollouts_per_instance,
            "instance_rng": "numpy SeedSequence([seed, 0, instance])",
            "selection_rng": "numpy SeedSequence([seed, 1])",
        },
        "versions": package_versions(),
        "command": command,
    }


_REQUIRED_META = {
    "format": str,
    "format_version": int,
    "task": str,
    "theta": dict,
    "goal": dict,
    "size": int,
    "seed": int,
}


def _check_meta(meta: Any, path: Path, task_id: str | None, hint: str) -> None:
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(meta).__name__}. {hint}")
    for key, kind in _REQUIRED_META.items():
        if not isinstance(meta.get(key), kind):
            raise DatasetError(f"{path}: field {key!r} is missing or not a {kind.__name__}. {hint}")
    if meta["format"] != FORMAT_NAME or meta["format_version"] != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: format {meta['format']!r} v{meta['format_version']}, expected"
            f" {FORMAT_NAME!r} v{FORMAT_VERSION}. {hint}"
        )
    if meta["task"] not in TASKS:
        raise DatasetError(f"{path}: unknown task {meta['task']!r}. {hint}")
    if task_id is not None and meta["task"] != task_id:
        raise DatasetError(
            f"{path}: this dataset is for task {meta['task']!r}, not {task_id!r}. {hint}"
        )


def _check_meta_matches_task(meta: dict[str, Any], task: Task, path: Path, hint: str) -> None:
    spec = task.theta_spec
    theta = meta["theta"]
    want = {
        "names": list(spec.names),
        "units": list(spec.units),
        "low": list(spec.low),
        "high": list(spec.high),
    }
    got = {k: theta.get(k) for k in want}
    if got != want:
        raise DatasetError(
            f"{path}: θ spec {got} does not match task {task.task_id}'s {want}. {hint}"
        )
    axes = list(GOAL_AXES[: task.goal_dim])
    if meta["goal"].get("axes") != axes:
        raise DatasetError(
            f"{path}: goal axes {meta['goal'].get('axes')} do not match {task.task_id}'s"
            f" {axes}. {hint}"
        )


def _regen_hint(task_id: str | None, directory: Path) -> str:
    task = task_id or "<task>"
    return (
        f"Regenerate it with `icpi collect --task {task} --out {directory}`"
        " (see datasets/README.md)."
    )


# ---------------------------------------------------------------------------- files
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it over ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; datasets are meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- rebuilds
#: Relative tolerance of a rebuilt dataset's MuJoCo-computed floats (e, outcome, goal):
#: MuJoCo and numpy take other SIMD paths on other CPUs, which moves the last bits.
REBUILD_RTOL = 1e-9
#: Absolute floor of that tolerance, for values near zero [m].
REBUILD_ATOL = 1e-12
#: Columns that a rebuild must reproduce exactly on any machine: they come from the
#: seeded RNGs and the selection, not from the physics.
EXACT_BLOCKS = ("theta", "dtheta", "physics")
#: Sidecar fields that may differ between two builds of the same data: the table's hash,
#: the package versions and the command line (which names the output directory).
_VOLATILE_META = ("examples_sha256", "versions", "command")


@dataclass(frozen=True)
class DatasetComparison:
    """How a rebuilt dataset compares with a reference copy (see :func:`compare_datasets`)."""

    identical: bool
    """Both tables hold bit-identical values (the promise on one machine)."""
    within_tolerance: bool
    """Integer, θ, Δθ* and physics columns are exact, and every other float is within
    ``REBUILD_RTOL`` relative (``REBUILD_ATOL`` absolute) of the reference."""
    problems: tuple[str, ...]
    """What breaks the tolerance, one line each (empty when within it)."""
    max_abs_diff: float
    """Largest absolute difference over the float columns [m or θ units]."""
    rows_differing: int
    """Rows with any bit difference."""

    def describe(self) -> str:
        """One line for a log or a terminal."""
        if self.identical:
            return "bit-identical to the reference"
        if self.within_tolerance:
            return (
                f"within tolerance of the reference (rtol {REBUILD_RTOL:g}): {self.rows_differing}"
                f" rows differ in the last bits, max |diff| {self.max_abs_diff:.3g}"
            )
        return "outside tolerance of the reference: " + "; ".join(self.problems)


def compare_datasets(
    rebuilt: ImprovementDataset,
    reference: ImprovementDataset,
    rtol: float = REBUILD_RTOL,
    atol: float = REBUILD_ATOL,
) -> DatasetComparison:
    """Compare a rebuilt dataset with a reference copy (e.g. the shipped one).

    On one machine a rebuild is bit-identical. On another CPU the MuJoCo-computed columns
    (``e``, ``outcome``, ``goal``) may differ in the last bits, so they are compared with a
    tolerance; the integer columns, θ, Δθ* and the physics come from the seeded RNGs and
    must match exactly, and so must the sidecar (but for the table's hash, the recorded
    package versions and the command line).

    Args:
        rebuilt: The new build.
        reference: The copy to compare with.
        rtol: Relative tolerance of the physics-computed floats.
        atol: Absolute tolerance of the physics-computed floats (near-zero values).

    Returns:
        The comparison.
    """
    problems: list[str] = []
    meta_a = {k: v for k, v in rebuilt.meta.items() if k not in _VOLATILE_META}
    meta_b = {k: v for k, v in reference.meta.items() if k not in _VOLATILE_META}
    for key in sorted(set(meta_a) | set(meta_b)):
        if meta_a.get(key) != meta_b.get(key):
            problems.append(f"sidecar field {key!r} differs")
    cols_a, cols_b = rebuilt._columns(), reference._columns()
    if list(cols_a) != list(cols_b) or len(rebuilt) != len(reference):
        problems.append(
            f"table shape differs ({len(rebuilt)} vs {len(reference)} rows,"
            f" columns {list(cols_a)} vs {list(cols_b)})"
        )
        return DatasetComparison(False, False, tuple(problems), math.inf, len(reference))
    differing = np.zeros(len(reference), dtype=bool)
    max_diff = 0.0
    for name, a in cols_a.items():
        b = cols_b[name]
        differing |= a != b
        prefix = name.partition(".")[0]
        if a.dtype.kind != "f" or prefix in EXACT_BLOCKS:
            bad = int(np.count_nonzero(a != b))
            if bad:
                problems.append(f"column {name!r} must match exactly; {bad} rows differ")
            if a.dtype.kind == "f":
                max_diff = max(max_diff, float(np.max(np.abs(a - b))))
            continue
        diff = np.abs(a - b)
        max_diff = max(max_diff, float(diff.max(initial=0.0)))
        far = ~np.isclose(a, b, rtol=rtol, atol=atol)
        if np.any(far):
            j = int(np.argmax(np.where(far, diff, -1.0)))
            problems.append(
                f"column {name!r}: {int(far.sum())} rows beyond rtol {rtol:g} (row {j}:"
                f" {a[j]!r} vs {b[j]!r})"
            )
    rows = int(differing.sum())
    return DatasetComparison(
        identical=rows == 0 and not problems,
        within_tolerance=not problems,
        problems=tuple(problems),
        max_abs_diff=max_diff,
        rows_differing=rows,
    )


__all__ = [
    "DEFAULT_DESIGN",
    "DEFAULT_SIZE",
    "DatasetComparison",
    "DatasetError",
    "ImprovementDataset",
    "SamplingDesign",
    "collect_dataset",
    "compare_datasets",
    "default_dataset_dir",
    "load_default_dataset",
    "regeneration_command",
]
