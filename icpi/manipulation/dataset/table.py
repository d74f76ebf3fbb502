"""The file format of an improvement dataset: the table, its sidecar, validation, rebuilds.

A dataset is a directory with ``examples.parquet`` (flat columns, see
:data:`BASE_COLUMNS` and :meth:`ImprovementDataset.column_names`) and ``meta.json`` (task,
θ names/units/bounds, goal axes, the definition of e, size, seed, the sampling design,
package versions, the command line, the table's sha256). Loading validates everything;
:func:`compare_datasets` checks a rebuild against a reference copy to the stated tolerance.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from icpi.core import rundir
from icpi.core.files import atomic_path
from icpi.envs import load_task
from icpi.envs.spec import SkillTask
from icpi.errors import UserError

if TYPE_CHECKING:
    from icpi.manipulation.dataset.design import SamplingDesign

FORMAT_NAME = "icpi-improvement-dataset"
FORMAT_VERSION = 1
EXAMPLES_FILE = "examples.parquet"
META_FILE = "meta.json"
GOAL_AXES = ("x", "y", "z")
# Integer columns, in table order, before the float blocks.
BASE_COLUMNS = ("instance", "seed", "rollout_a", "rollout_b")
# Float column blocks named by θ after the dot (the others, e, outcome and goal, by GOAL_AXES).
THETA_BLOCKS = ("theta", "dtheta")
E_TEMPLATE = (
    "Hindsight relabelling of two rollouts a, b of one instance: the relabelled goal is"
    " g' = outcome_b (b's outcome for the instance's own goal); e = outcome_a(g') - g', where"
    " outcome_a(g') = task.outcome(path of a, g') is {outcome};"
    " dtheta = theta_b - theta_a; outcome = outcome_a(g'); goal = g'. Units: {units} for e,"
    " outcome and goal; theta units as listed."
)
#: What the outcome of the shipped tasks is (their datasets' sidecars say it so).
SHIPPED_OUTCOME = (
    "the final xy position of the puck/ball (slide, ball-roll-gc) or the point of the rope"
    " tip's path closest to g' (rope-swing)"
)
E_DEFINITION = E_TEMPLATE.format(outcome=SHIPPED_OUTCOME, units="metres")


def e_definition(task: SkillTask) -> str:
    """The sidecar's definition of e for a task (its own outcome, not the shipped tasks').

    Args:
        task: The task; a user's task may say what its outcome is in an
            ``outcome_description`` attribute, and in what unit in ``outcome_unit``.

    Returns:
        The text.
    """
    described = getattr(task, "outcome_description", None)
    if described is None and type(task).__module__.startswith("icpi.envs."):
        return E_DEFINITION
    outcome = described or "what the task's outcome method returns for that path and goal"
    units = getattr(task, "outcome_unit", None) or "the units of the task's outcome"
    return E_TEMPLATE.format(outcome=outcome, units=units)


# Tolerance on θ bounds when validating a loaded table.
_BOUND_TOL = 1e-9


class DatasetError(UserError, ValueError):
    """A dataset file is missing, corrupt, or does not match what was asked for."""


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
        with atomic_path(parquet_path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        self.meta["size"] = len(self)
        self.meta["columns"] = list(cols)
        self.meta["examples_sha256"] = _sha256(parquet_path)
        text = json.dumps(self.meta, indent=2, ensure_ascii=False) + "\n"
        with atomic_path(directory / META_FILE) as tmp:
            tmp.write_text(text, encoding="utf-8")

    @classmethod
    def load(
        cls, directory: Path, task_id: str | None = None, task: SkillTask | None = None
    ) -> ImprovementDataset:
        """Read and validate a dataset directory.

        Checks: the sidecar is valid JSON of this format and (when given) of ``task_id``;
        its θ names/units/bounds match the task's; the table reads; it has exactly the
        expected columns with the expected types; it has ``size`` rows, no missing or
        non-finite values, θ and θ + Δθ* inside the bounds, e = outcome − goal; and its
        sha256 is the one the sidecar recorded.

        Args:
            directory: Directory holding ``examples.parquet`` and ``meta.json``.
            task_id: Expected task id; ``None`` accepts the sidecar's.
            task: The task object to check the θ spec against (a user's own task);
                ``None``: load it from the sidecar's ``task_spec`` (or shipped id).

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
        hint = _regen_hint(meta.get("task_spec") or meta["task"], directory)
        if task is None:
            task = load_task(meta.get("task_spec") or meta["task"])
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
        physics_names = sorted(meta.get("physics") or {})
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


# ---------------------------------------------------------------------------- sidecar
def package_versions() -> dict[str, str | None]:
    """Versions of the packages that shape a dataset's bytes (all are dependencies)."""
    return rundir.package_versions(("icpi", "numpy", "mujoco", "pyarrow"))


def build_meta(
    task: SkillTask,
    size: int,
    seed: int,
    design: SamplingDesign,
    n_instances: int,
    command: str,
    task_spec: str | None = None,
) -> dict[str, Any]:
    """The sidecar of a dataset (everything but its columns and the table's hash).

    Args:
        task: The task.
        size: Rows.
        seed: Dataset seed.
        design: Sampling design.
        n_instances: Instances sampled.
        command: The command line (or source) that rebuilds it.
        task_spec: How to load the task (``module:Class`` of a user's task); recorded
            when it differs from the task id.

    Returns:
        JSON data.
    """
    spec = task.theta_spec
    dim = goal_dim(task)
    physics = getattr(task, "physics_ranges", {}) or {}
    meta: dict[str, Any] = {
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
            "dim": dim,
            "axes": list(GOAL_AXES[:dim]),
            "unit": "m",
            "goal_conditioned": bool(getattr(task, "goal_conditioned", True)),
            "fixed_goal": _listed(getattr(task, "fixed_goal", None)),
            "region_low": _listed(getattr(task, "goal_low", None)),
            "region_high": _listed(getattr(task, "goal_high", None)),
        },
        "physics": {k: list(physics[k]) for k in sorted(physics)},
        "e_definition": e_definition(task),
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
    if task_spec is not None and task_spec != task.task_id:
        meta["task_spec"] = task_spec
    return meta


def _listed(value: Any) -> list[float] | None:
    return None if value is None else [float(v) for v in value]


def goal_dim(task: SkillTask) -> int:
    """The goal's dimension: the task's ``goal_dim``, else that of an instance's goal."""
    dim = getattr(task, "goal_dim", None)
    if dim is None:
        dim = len(task.sample_instance(np.random.default_rng(0)).goal)
    return int(dim)


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
    if task_id is not None and meta["task"] != task_id:
        raise DatasetError(
            f"{path}: this dataset is for task {meta['task']!r}, not {task_id!r}. {hint}"
        )


def _check_meta_matches_task(meta: dict[str, Any], task: SkillTask, path: Path, hint: str) -> None:
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
    if meta["task"] != task.task_id:
        raise DatasetError(
            f"{path}: this dataset is for task {meta['task']!r}, not {task.task_id!r}. {hint}"
        )
    axes = list(GOAL_AXES[: goal_dim(task)])
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


# ---------------------------------------------------------------------------- rebuilds
#: Relative tolerance of a rebuilt dataset's MuJoCo-computed floats (e, outcome, goal):
#: MuJoCo and numpy take other SIMD paths on other CPUs, which moves the last bits.
REBUILD_RTOL = 1e-9
#: Absolute tolerance of those floats [m]. Contacts amplify a last-bit difference: one ulp
#: of θ moves an outcome by up to 1.2e-14 m (slide), 1.0e-12 m (rope-swing-gc) and
#: 1.7e-10 m (ball-roll-gc; 1680 rollouts each; another CPU moved it 2.1e-10 m), so 1e-8 m
#: holds every shipped dataset with a margin of 50, and a real change (a micrometre) still
#: fails. ``benchmarks/bench_datasets.py`` prints these figures.
REBUILD_ATOL = 1e-8
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
    ``REBUILD_ATOL`` (or ``REBUILD_RTOL`` relative, if larger) of the reference."""
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
                f"within tolerance of the reference ({REBUILD_ATOL:g} m): {self.rows_differing}"
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
    (``e``, ``outcome``, ``goal``) may differ in the last bits, amplified by contacts, so
    they are compared with a tolerance (:data:`REBUILD_ATOL`); the integer columns, θ, Δθ*
    and the physics come from the seeded RNGs and must match exactly, and so must the
    sidecar (but for the table's hash, the recorded package versions and the command line).

    Args:
        rebuilt: The new build.
        reference: The copy to compare with.
        rtol: Relative tolerance of the physics-computed floats.
        atol: Absolute tolerance of the physics-computed floats [m].

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
                f"column {name!r}: {int(far.sum())} rows beyond {atol:g} (row {j}:"
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
