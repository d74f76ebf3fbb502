"""Reading run and benchmark directories for the report, tolerating older layouts.

A run directory (see :mod:`icpi.manipulation.run`) needs only ``records.jsonl`` with a
``cost`` per line; ``config.json``, ``summary.json``, ``meta.json`` and ``attempts.jsonl``
are read when present, and every record key but ``cost`` is optional, so directories
written by older versions still render. A benchmark directory holds run directories as
``runs/<task>/<method>/seed-<k>/`` (see :mod:`icpi.manipulation.bench`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icpi.core.files import read_jsonl
from icpi.errors import UserError

BENCH_RUN_GLOB = "runs/*/*/seed-*"


class ReportError(UserError, ValueError):
    """A directory that the report cannot read (the message says why and what it expects)."""


@dataclass
class Run:
    """One run directory, as read from disk."""

    path: Path
    """The directory."""
    records: list[dict[str, Any]]
    """``records.jsonl``: one record per rollout, in iteration order."""
    config: dict[str, Any] = field(default_factory=dict)
    """``config.json`` (empty when missing)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """``summary.json`` (empty when missing: an unfinished run)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """``meta.json`` (empty when missing)."""
    attempts: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Model attempts by iteration, from ``attempts.jsonl`` (empty for model-free methods)."""
    task: str | None = None
    """Task spec as recorded (a shipped id or ``/abs/file.py:Class``; ``None`` when not
    recorded)."""
    task_id: str | None = None
    """The task's id, its name on the page (``None`` when not recorded)."""
    method: str = "?"
    """Method id (``?`` when not recorded)."""
    seed: int | None = None
    """Instance seed (``None`` when not recorded)."""
    label: str = ""
    """Method label in a benchmark (its spec, e.g. ``icpi[k=10]``); else the method id."""

    @property
    def costs(self) -> list[float]:
        """Cost of every rollout [m]."""
        return [float(r["cost"]) for r in self.records]

    @property
    def best_index(self) -> int:
        """Position of the cheapest rollout (the first one on ties)."""
        costs = self.costs
        return costs.index(min(costs))

    @property
    def name(self) -> str:
        """The task's name on the page: its id, else its spec, else ``?``."""
        return self.task_id or self.task or "?"

    @property
    def key(self) -> str:
        """Short unique name, e.g. ``slide/icpi/seed-0``."""
        return f"{self.name}/{self.label or self.method}/seed-{self.seed}"

    def summary_or_derived(self) -> tuple[dict[str, Any], bool]:
        """The run's summary, or figures derived from its records when it has none.

        Returns:
            The summary and whether it was derived (no ``summary.json``).
        """
        if self.summary:
            return self.summary, False
        costs = self.costs
        derived = {
            "task": self.task,
            "method": self.method,
            "seed": self.seed,
            "iterations": len(costs),
            "initial_cost": costs[0],
            "final_cost": costs[-1],
            "best_cost": min(costs),
        }
        return derived, True


def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is a dict, else an empty dict (for optional nested JSON).

    Args:
        value: Anything read from JSON.

    Returns:
        A dict.
    """
    return value if isinstance(value, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportError(f"{path} is not valid JSON ({err})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path} is unreadable ({err})") from err
    return as_dict(data)


def _records(path: Path) -> list[dict[str, Any]]:
    """The records of a run, each checked.

    Each must be an object with a finite cost and a whole iteration number (when it has
    one).

    Raises:
        ReportError: Naming the first bad line.
    """
    file = path / "records.jsonl"
    try:
        records: list[Any] = read_jsonl(file)
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{file} is unreadable ({err})") from err
    if not records:
        raise ReportError(f"{path} holds no rollouts (records.jsonl missing or empty)")
    for i, rec in enumerate(records, 1):
        where = f"{file} line {i}"
        if not isinstance(rec, dict):
            raise ReportError(f"{where} is not a JSON object ({type(rec).__name__})")
        if "cost" not in rec:
            raise ReportError(
                f"{where} has no cost: icpi report covers skill-improvement runs (records"
                " with theta and cost), not language-task runs"
            )
        if not _is_number(rec["cost"]):
            raise ReportError(f"{where} has a cost that is not a finite number ({rec['cost']!r})")
        iteration = rec.get("iteration", 0)
        if not isinstance(iteration, int) or isinstance(iteration, bool):
            raise ReportError(
                f"{where} has an iteration that is not a whole number ({iteration!r})"
            )
    return records


def _attempts(path: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for line in read_jsonl(path):
        attempt = line.get("attempt", line) if line.get("kind", "attempt") == "attempt" else None
        if isinstance(attempt, dict) and isinstance(attempt.get("iteration"), int):
            out[attempt["iteration"]] = attempt
    return out


def load_run(path: Path, label: str = "", task: str | None = None, seed: int | None = None) -> Run:
    """Read one run directory.

    Args:
        path: The directory.
        label: Method label to show (default: the recorded method id).
        task: Task id when the run does not record it (a benchmark's directory name).
        seed: Seed when the run does not record it (a benchmark's directory name).

    Returns:
        The run.

    Raises:
        ReportError: If the directory holds no records, a record that is not an object,
            without a finite cost (e.g. a language-task run) or with an iteration that is not
            a whole number, or an unreadable JSON file.
    """
    records = _records(path)
    records.sort(key=lambda r: r.get("iteration", 0))
    config = _read_json(path / "config.json")
    summary = _read_json(path / "summary.json")
    meta = _read_json(path / "meta.json")
    run_cfg = as_dict(config.get("run"))
    recorded_task = run_cfg.get("task", summary.get("task", task))
    recorded_seed = run_cfg.get("seed", summary.get("seed", meta.get("seed", seed)))
    method = str(run_cfg.get("method", summary.get("method", "?")))
    task_id = summary.get("task_id")
    if task_id is None and recorded_task is not None:
        spec = str(recorded_task)
        task_id = spec if ":" not in spec else _short_name(spec)
    return Run(
        path=path,
        records=records,
        config=config,
        summary=summary,
        meta=meta,
        attempts=_attempts(path / "attempts.jsonl"),
        task=str(recorded_task) if recorded_task is not None else None,
        task_id=str(task_id) if task_id is not None else None,
        method=method,
        seed=recorded_seed if isinstance(recorded_seed, int) else None,
        label=label or method,
    )


def _short_name(spec: str) -> str:
    """A name for a task spec of a run that records no task id: ``file.py:Class``."""
    target, _, attr = spec.rpartition(":")
    return f"{Path(target).name}:{attr}" if target.endswith(".py") else spec


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_benchmark(path: Path) -> bool:
    """Whether ``path`` is a benchmark directory (holds ``runs/<task>/<method>/seed-<k>/``).

    Args:
        path: The directory.

    Returns:
        True for a benchmark directory.
    """
    return any((d / "records.jsonl").exists() for d in path.glob(BENCH_RUN_GLOB))


def _method_labels(path: Path) -> dict[str, str]:
    """Map directory names (slugs) to the method specs written in ``results.parquet``."""
    from icpi.manipulation.config import MethodSpec

    results = path / "results.parquet"
    if not results.exists():
        return {}
    import pyarrow.parquet as pq

    try:
        names = pq.read_table(results, columns=["method"]).column("method").to_pylist()
    except (OSError, KeyError, ValueError):
        return {}
    return {MethodSpec(n, n, {}, {}, {}).slug: n for n in dict.fromkeys(names)}


def load_benchmark(path: Path, left_out: list[str] | None = None) -> list[Run]:
    """Read every run of a benchmark directory.

    Runs come ordered by task (the shipped order, then others), method (as in the
    benchmark's results when known) and seed. A run that cannot be read (an empty
    ``records.jsonl``, a record without a finite cost, an unreadable ``config.json``) is
    left out, and named in ``left_out``.

    Args:
        path: The benchmark directory.
        left_out: Receives one line per run left out (its directory and why).

    Returns:
        The runs that can be read.

    Raises:
        ReportError: If no run directory holds readable records.
    """
    from icpi.envs import TASKS

    labels = _method_labels(path)
    runs = []
    bad = []
    for d in sorted(path.glob(BENCH_RUN_GLOB)):
        if not re.fullmatch(r"seed-\d+", d.name) or not (d / "records.jsonl").exists():
            continue
        try:
            label = labels.get(d.parent.name, d.parent.name)
            seed = int(d.name.removeprefix("seed-"))
            runs.append(load_run(d, label=label, task=d.parent.parent.name, seed=seed))
        except ReportError as err:
            bad.append(f"{d.relative_to(path)} is left out: {err}")
    if left_out is not None:
        left_out += bad
    if not runs:
        why = f" ({bad[0]})" if bad else ""
        raise ReportError(
            f"{path} holds no readable run directories ({BENCH_RUN_GLOB}/records.jsonl){why}"
        )
    task_order = {t: i for i, t in enumerate(TASKS)}
    method_order = {m: i for i, m in enumerate(labels.values())}
    runs.sort(
        key=lambda r: (
            task_order.get(r.path.parent.parent.name, len(task_order)),
            r.path.parent.parent.name,
            method_order.get(r.label, len(method_order)),
            r.label,
            int(r.path.name.removeprefix("seed-")),
        )
    )
    return runs
