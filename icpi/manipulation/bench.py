"""The benchmark harness: every (task, method, instance) run, a table and learning curves.

Layout of a benchmark directory::

    runs/<task>/<method>/seed-<k>/   one run directory each (resumable, see run.py)
    results.parquet                  one row per iteration of every run
    summary.csv, summary.md          per task x method: mean final cost ± s.e., best so far
    curves.png                       mean cost against iteration, one line per method

A method spec is a method id, optionally with settings in brackets, validated like any
other configuration (:func:`~icpi.manipulation.config.parse_method_spec`): ``icpi[k=10]``,
``icpi[feature=raw]``, ``icpi[dataset_size=100]``, ``icpi[model=gpt-4o]`` (several
separated by ``;``). Runs without a model go to a process pool; runs that query a model go
to ``llm_concurrency`` threads in this process, sharing one endpoint and its cache (the
embedded server is started once).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import math
import multiprocessing
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from icpi.config import merge
from icpi.core.files import read_jsonl
from icpi.core.lock import DirLock
from icpi.envs import TASKS
from icpi.errors import ConfigError
from icpi.llm import LLMConfig
from icpi.manipulation.config import MethodSpec, load_run_config, parse_method_spec
from icpi.manipulation.methods import get_method, load_methods
from icpi.manipulation.run import run_method

log = logging.getLogger(__name__)

# Presets: name -> method specs (the paper's table and its ablation axes).
PRESETS: dict[str, tuple[str, ...]] = {
    "table1": ("icpi", "random", "bo", "knn5", "lknn20"),
    "all": (),  # every registered method (filled in by preset_methods)
    "ablation-feature": ("icpi[feature=e]", "icpi[feature=raw]"),
    "ablation-k": ("icpi[k=5]", "icpi[k=10]", "icpi[k=20]", "icpi[k=40]"),
    "ablation-dataset-size": (
        "icpi[dataset_size=50]",
        "icpi[dataset_size=100]",
        "icpi[dataset_size=300]",
    ),
}


def preset_methods(name: str) -> list[str]:
    """The method specs of a preset.

    Args:
        name: Preset name (a key of :data:`PRESETS`).

    Returns:
        The specs (``all``: every registered method).

    Raises:
        ConfigError: On an unknown preset.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return list(PRESETS[name]) or list(load_methods())


def split_list(text: str) -> list[str]:
    """Split a comma list, keeping commas inside brackets.

    Args:
        text: E.g. ``"icpi[k=5;feature=raw],random"``.

    Returns:
        The items, stripped.
    """
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    return [i for i in items if i]


def parse_seeds(text: str) -> list[int]:
    """Parse ``"0-9"``, ``"0,3,5"`` or ``"0-4,7"``.

    Args:
        text: The seed list.

    Returns:
        Seeds in the order given, without repeats.

    Raises:
        ConfigError: On a malformed item or an empty list.
    """
    seeds: list[int] = []
    for item in split_list(text):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if m is None:
            raise ConfigError(f"bad seed item {item!r}; use e.g. 0-9 or 0,3,5")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"empty seed range {item!r}")
        seeds += [s for s in range(lo, hi + 1) if s not in seeds]
    if not seeds:
        raise ConfigError(f"no seeds in {text!r}; use e.g. --seeds 0-9 or --seeds 0,3,5")
    return seeds


@dataclass(frozen=True)
class Job:
    """One run of the benchmark: its configuration, its LLM settings and its directory."""

    task: str
    spec: MethodSpec
    seed: int
    iterations: int
    out: Path
    run: Mapping[str, Any]
    """The user's run layer (flags and config file) under the spec's settings."""
    llm: Mapping[str, Any]
    """The user's LLM layer (flags and config file)."""

    def config(self) -> Any:
        """The run configuration (defaults < user layer < method spec)."""
        base = {"task": self.task, "seed": self.seed, "iterations": self.iterations}
        return load_run_config(base, self.run, self.spec.layer(), where=self.spec.label)

    def llm_config(self) -> LLMConfig | None:
        """The LLM configuration (method defaults < user layer < spec), if it uses one."""
        if not self.spec.uses_model:
            return None
        method = get_method(self.spec.method)
        return LLMConfig.from_sources(
            overrides=merge(self.llm, self.spec.llm), defaults=method.llm_defaults
        )

    def done(self) -> bool:
        """Whether the run already finished (its summary covers every iteration)."""
        summary = self.out / "summary.json"
        if not summary.exists():
            return False
        try:
            return bool(json.loads(summary.read_text())["iterations"] >= self.iterations)
        except (json.JSONDecodeError, KeyError):
            return False

    def __call__(self) -> dict[str, Any]:
        """Run (or resume) the job."""
        return run_method(self.config(), self.out, llm=self.llm_config())


def _run_job(job: Job) -> dict[str, Any]:
    return job()


def run_benchmark(
    tasks: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    iterations: int,
    out: Path,
    llm: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
    workers: int = 2,
    llm_concurrency: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every (task, method, seed) that is not finished yet, then write the reports.

    Args:
        tasks: Task ids.
        methods: Method specs (see :func:`~icpi.manipulation.config.parse_method_spec`).
        seeds: Instance seeds.
        iterations: Rollouts per run, θ0 included.
        out: Benchmark directory (resumed when it exists; locked while running).
        llm: The user's LLM settings (flags over config file), under each spec's own.
        run: The user's run settings (e.g. ``dataset``, ``theta0``), under each spec's.
        workers: Processes for the runs that query no model.
        llm_concurrency: Model-using runs in flight at once (threads sharing one endpoint
            and the completion cache).
        progress: Show a progress bar.

    Returns:
        Paths of the reports and the summary rows.

    Raises:
        ConfigError: On an unknown task, a malformed method spec or a bad setting.
    """
    from tqdm import tqdm

    unknown = [t for t in tasks if t not in TASKS and ":" not in t]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    if iterations < 1 or workers < 1 or llm_concurrency < 1:
        raise ConfigError("--iterations, --workers and --llm-concurrency must be >= 1")
    specs = [parse_method_spec(m) for m in methods]
    jobs = [
        Job(
            t, s, seed, iterations, out / "runs" / t / s.slug / f"seed-{seed}", run or {}, llm or {}
        )
        for t in tasks
        for s in specs
        for seed in seeds
    ]
    for job in jobs:  # every configuration is checked before anything runs
        job.config()
        job.llm_config()
    with DirLock(out, what="benchmark"):
        todo = [j for j in jobs if not j.done()]
        log.info(
            "%d runs, %d to do (%d finished earlier)", len(jobs), len(todo), len(jobs) - len(todo)
        )
        bar = tqdm(total=len(todo), desc="runs", disable=not progress, unit="run")
        offline = [j for j in todo if not j.spec.uses_model]
        online = [j for j in todo if j.spec.uses_model]
        spawn = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        with (
            cf.ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool,
            cf.ThreadPoolExecutor(max_workers=llm_concurrency) as threads,
        ):
            futures = [pool.submit(_run_job, j) for j in offline]
            futures += [threads.submit(_run_job, j) for j in online]
            try:
                for fut in cf.as_completed(futures):
                    fut.result()
                    bar.update()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        bar.close()
        return write_reports(jobs, out)


def collect_rows(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """One row per iteration of every run.

    Args:
        jobs: The benchmark's runs.

    Returns:
        Rows with task, method, seed, iteration, cost, best_so_far, source and θ.
    """
    rows = []
    for job in jobs:
        best = math.inf
        for rec in read_jsonl(job.out / "records.jsonl")[: job.iterations]:
            best = min(best, rec["cost"])
            rows.append(
                {
                    "task": job.task,
                    "method": job.spec.label,
                    "seed": job.seed,
                    "iteration": rec["iteration"],
                    "cost": rec["cost"],
                    "best_so_far": best,
                    "source": rec.get("source", ""),
                    "theta": list(rec["theta"]),
                }
            )
    return rows


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, float)
    se = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else math.nan
    return float(arr.mean()), se


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task x method figures over instances (each at its last iteration).

    Args:
        rows: Output of :func:`collect_rows`.

    Returns:
        Rows with task, method, instances, final cost mean ± s.e., best-so-far mean ± s.e.
        and the success rate (best cost under 5 mm).
    """
    last: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        key = (r["task"], r["method"], r["seed"])
        if key not in last or r["iteration"] > last[key]["iteration"]:
            last[key] = r
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (task, method, _), r in last.items():
        groups.setdefault((task, method), []).append(r)
    out = []
    for (task, method), rs in groups.items():
        final_m, final_se = _mean_se([r["cost"] for r in rs])
        best_m, best_se = _mean_se([r["best_so_far"] for r in rs])
        out.append(
            {
                "task": task,
                "method": method,
                "instances": len(rs),
                "final_cost_mean": final_m,
                "final_cost_se": final_se,
                "best_cost_mean": best_m,
                "best_cost_se": best_se,
                "success_rate": float(np.mean([r["best_so_far"] < 0.005 for r in rs])),
            }
        )
    return out


def markdown_table(summary: Sequence[dict[str, Any]], tasks: Sequence[str]) -> str:
    """The paper's Table 1 layout: methods as rows, tasks as columns.

    Args:
        summary: Output of :func:`summarise`.
        tasks: Column order.

    Returns:
        Markdown with mean final cost ± s.e. [m], and best-so-far in parentheses.
    """
    methods = list(dict.fromkeys(s["method"] for s in summary))
    cell = {(s["task"], s["method"]): s for s in summary}
    lines = [
        "Mean final cost ± standard error [m] (mean best-so-far in parentheses).",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for m in methods:
        cells = []
        for t in tasks:
            s = cell.get((t, m))
            if s is None:
                cells.append("–")
                continue
            se = "" if math.isnan(s["final_cost_se"]) else f" ± {s['final_cost_se']:.3f}"
            cells.append(f"{s['final_cost_mean']:.3f}{se} ({s['best_cost_mean']:.3f})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    n = sorted({s["instances"] for s in summary})
    lines += ["", f"Instances per cell: {', '.join(map(str, n))}."]
    return "\n".join(lines) + "\n"


def plot_curves(rows: Sequence[dict[str, Any]], tasks: Sequence[str], path: Path) -> None:
    """Mean cost against iteration per task, one line per method.

    Args:
        rows: Output of :func:`collect_rows`.
        tasks: Panel order.
        path: PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for ax, task in zip(axes[0], tasks, strict=True):
        for m in methods:
            pts: dict[int, list[float]] = {}
            for r in rows:
                if r["task"] == task and r["method"] == m:
                    pts.setdefault(r["iteration"], []).append(r["cost"])
            if pts:
                its = sorted(pts)
                ax.plot(its, [np.mean(pts[i]) for i in its], label=m, marker=".")
        ax.set_title(task)
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("mean cost [m]")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_reports(jobs: Sequence[Job], out: Path) -> dict[str, Any]:
    """Write results.parquet, summary.csv, summary.md and curves.png.

    Args:
        jobs: The benchmark's runs.
        out: Benchmark directory.

    Returns:
        The report paths and the summary rows.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = collect_rows(jobs)
    tasks = list(dict.fromkeys(j.task for j in jobs))
    pq.write_table(pa.Table.from_pylist(rows), out / "results.parquet")
    summary = summarise(rows)
    pacsv.write_csv(pa.Table.from_pylist(summary), out / "summary.csv")
    table = markdown_table(summary, tasks)
    (out / "summary.md").write_text(table)
    plot_curves(rows, tasks, out / "curves.png")
    return {"summary": summary, "table": table, "out": str(out)}
