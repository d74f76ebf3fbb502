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

import functools
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from icpi.config import STRICT, merge
from icpi.core.estimate import ExpectationNotice
from icpi.core.files import read_jsonl
from icpi.core.lock import DirLock
from icpi.envs import TASKS, load_task
from icpi.envs.spec import SUCCESS_TOLERANCE, success_threshold
from icpi.errors import ConfigError
from icpi.jobs import BACKENDS, Lane, run_jobs
from icpi.llm import LLMConfig
from icpi.manipulation.config import (
    DEFAULT_METHOD,
    MethodSpec,
    RunConfig,
    load_run_config,
    parse_method_spec,
)
from icpi.manipulation.methods import get_method, load_methods
from icpi.manipulation.run import run_method

log = logging.getLogger(__name__)

# Presets: name -> method specs (the paper's table and its ablation axes).
PRESETS: dict[str, tuple[str, ...]] = {
    "table1": (
        "icpi",
        "icpi+",
        "icpi+[model=off]",
        "jacobian",
        "jacobian[final_best=true]",
        "lknn20",
        "lknn20[final_best=true]",
        "knn5",
        "bo",
        "cmaes",
        "random",
    ),
    "paper": ("icpi", "random", "bo", "knn5", "lknn20"),
    "all": (),  # every registered method (filled in by preset_methods)
    "ablation-feature": ("icpi[feature=e]", "icpi[feature=raw]"),
    "ablation-k": ("icpi[k=5]", "icpi[k=10]", "icpi[k=20]", "icpi[k=40]"),
    "ablation-dataset-size": (
        "icpi[dataset_size=50]",
        "icpi[dataset_size=100]",
        "icpi[dataset_size=300]",
    ),
    "ablation-icpi": ("icpi", "icpi[online_relabel=true]", "icpi[n_samples=5]"),
    # Run against the calibration proposer at several qualities by `icpi bench`
    # (icpi.manipulation.model_quality); given to run_benchmark, against the configured model.
    "model-quality": ("icpi", "icpi+", "icpi+[model=off]"),
    "ablation-plus": (
        "icpi+",
        "icpi+[model=off]",
        "icpi+[judge=off]",
        "icpi+[constrain=gbnf]",
        "icpi+[sensitivity=false]",
        "icpi+[zoom=false;sensitivity=false]",
        "icpi+[theta_steps=100;e_unit=0.01;zoom=false;sensitivity=false]",
        "icpi+[model=off;final_best=false]",
    ),
}


#: Reference method of the paired comparison (the paper's strongest numeric baseline).
REFERENCE = "lknn20"


@dataclass(frozen=True)
class BenchConfig:
    """What a benchmark runs: the flags of ``icpi bench`` and a config file's ``bench:``."""

    __pydantic_config__ = STRICT

    tasks: str = "all"
    """Comma list of tasks: shipped ids, your own as ``module:Class`` or
    ``path/file.py:Class``, or ``all`` (the five shipped tasks)."""
    methods: str = f"{DEFAULT_METHOD},{REFERENCE}"
    """Comma list of method specs, e.g. ``icpi+,lknn20,icpi[k=10;feature=raw]``; the default
    is the default method of every front end beside the baseline the summary pairs it with."""
    preset: str | None = None
    """A preset list of method specs instead of ``methods``."""
    models: str | None = None
    """Comma list of model names: adds ``icpi[model=NAME]`` for each (model ablation)."""
    seeds: str = "0-4"
    """Instance seeds, e.g. ``0-9`` or ``0,3,5``."""
    iterations: int = RunConfig.iterations
    """Rollouts per run, θ0 included."""
    workers: int = 2
    """Processes for the runs that query no model."""
    llm_concurrency: int = 1
    """Model-using runs in flight at once (one endpoint, one cache; the embedded server
    answers one request at a time, so more helps remote endpoints)."""
    backend: Literal["local", "ray"] = "local"
    """``local``: a process pool and threads; ``ray``: one Ray task per run, on a local Ray
    or the cluster of ``RAY_ADDRESS`` (``pip install 'icpi[ray]'``); the same results."""
    progress: bool = True
    """Show a progress bar."""
    reference: str = REFERENCE
    """The method the summary pairs every other with (wins/ties/losses, and in
    ``summary.csv`` the paired mean difference with its interval), e.g.
    ``icpi+[model=off;escape=0]`` to read what one setting adds."""
    draws: int = 1
    """``model-quality`` preset: noise draws of each noisy calibration proposer (σ > 0,
    ``random``); its rows pool them, each paired with ``icpi+[model=off]`` on its instance."""
    proposers: str | None = None
    """``model-quality`` preset: comma list of the proposers to run, e.g.
    ``sigma0,sigma10,random`` (unset: all, the embedded SmolLM2's slow row included)."""


def load_bench_config(*layers: Mapping[str, Any] | None, where: str = "") -> BenchConfig:
    """Resolve a benchmark's configuration from layers (defaults < file < flags).

    In a file, ``tasks``, ``methods`` and ``seeds`` may also be lists. The highest layer
    that names ``methods`` or ``preset`` decides the methods; one layer naming both is
    refused.

    Args:
        *layers: Mappings with :class:`BenchConfig` keys.
        where: Where the values come from, for messages.

    Returns:
        The configuration; ``preset`` unset when ``methods`` decides.

    Raises:
        ConfigError: On an unknown key, a bad value or ``methods`` beside ``preset``.
    """
    from icpi.config import load

    plain: list[dict[str, Any]] = []
    chosen: dict[str, Any] = {}
    for layer in layers:
        flat = {
            k: ",".join(map(str, v)) if isinstance(v, list | tuple) else v
            for k, v in (layer or {}).items()
            if v is not None
        }
        if "methods" in flat and "preset" in flat:
            raise ConfigError(f"methods and preset both set{' in ' + where if where else ''}")
        if "methods" in flat or "preset" in flat:
            chosen = {"methods": flat.pop("methods", None), "preset": flat.pop("preset", None)}
        plain.append(flat)
    cfg = load(BenchConfig, *plain, {k: v for k, v in chosen.items() if v is not None}, where=where)
    if cfg.preset is not None:
        preset_methods(cfg.preset)  # an unknown preset is refused here
    if cfg.reference != REFERENCE and cfg.reference not in bench_methods(cfg):
        raise ConfigError(
            f"reference {cfg.reference!r} is not among the methods; add it to them"
            f"{' in ' + where if where else ''}"
        )
    if cfg.draws < 1 or (cfg.draws > 1 and cfg.preset != "model-quality"):
        raise ConfigError(
            f"draws must be >= 1 and counts noise draws of the model-quality preset only, got"
            f" draws={cfg.draws} with preset={cfg.preset}{' in ' + where if where else ''}"
        )
    if cfg.proposers is not None:
        from icpi.manipulation.model_quality import PROPOSERS

        named = split_list(cfg.proposers)
        unknown = [p for p in named if p not in PROPOSERS]
        if cfg.preset != "model-quality" or unknown or not named:
            raise ConfigError(
                f"proposers chooses among the model-quality preset's ({', '.join(PROPOSERS)}),"
                f" got proposers={cfg.proposers} with preset={cfg.preset}"
                f"{' in ' + where if where else ''}"
            )
    return cfg


def bench_methods(cfg: BenchConfig) -> list[str]:
    """The method specs of a benchmark configuration.

    Args:
        cfg: The configuration.

    Returns:
        The preset's or ``methods``' specs, then ``icpi[model=NAME]`` per model.
    """
    methods = preset_methods(cfg.preset) if cfg.preset else split_list(cfg.methods)
    return methods + [f"icpi[model={m}]" for m in split_list(cfg.models or "")]


def bench_tasks(cfg: BenchConfig) -> list[str]:
    """The task specs of a benchmark configuration (``all``: the shipped tasks).

    Args:
        cfg: The configuration.

    Returns:
        Task specs.
    """
    return list(TASKS) if cfg.tasks.strip() == "all" else split_list(cfg.tasks)


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

    def config(self) -> RunConfig:
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

    def __call__(self, notice: ExpectationNotice | None = None) -> dict[str, Any]:
        """Run (or resume) the job.

        Args:
            notice: Where its model calls are counted and timed (shared by a benchmark).

        Returns:
            The run's summary.
        """
        return run_method(self.config(), self.out, llm=self.llm_config(), notice=notice)


def _run_job(job: Job, notice: ExpectationNotice | None = None) -> dict[str, Any]:
    return job(notice)


def task_dir_name(task: str) -> str:
    """The folder of a task's runs: its id, or for ``path/file.py:Class`` ``file.py_Class``.

    A task given by an absolute path must not escape the benchmark directory.

    Args:
        task: Task spec.

    Returns:
        A file-system-safe name (no separators).
    """
    name = task if task in TASKS else Path(task.replace("\\", "/")).name
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name).strip("_.") or "task"


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
    backend: str = "local",
    reference: str = REFERENCE,
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
        backend: ``local`` (a process pool and threads) or ``ray`` (one Ray task per run,
            on a local Ray or the cluster of ``RAY_ADDRESS``; the results are the same);
            see :func:`icpi.jobs.run_jobs` (a run whose worker dies is run again, and
            resumes from its directory).
        reference: The method the summary pairs every other with.

    Returns:
        Paths of the reports and the summary rows.

    Raises:
        ConfigError: On an unknown task, a malformed method spec or a bad setting.
        WorkerLostError: If workers kept dying (exit 3; rerunning resumes).
    """
    from tqdm import tqdm

    unknown = [t for t in tasks if t not in TASKS and ":" not in t]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    if iterations < 1 or workers < 1 or llm_concurrency < 1:
        raise ConfigError("--iterations, --workers and --llm-concurrency must be >= 1")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    specs = [parse_method_spec(m) for m in methods]
    jobs = [
        Job(
            t,
            s,
            seed,
            iterations,
            out / "runs" / task_dir_name(t) / s.slug / f"seed-{seed}",
            run or {},
            llm or {},
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
        offline = [j for j in todo if not j.spec.uses_model]
        online = [j for j in todo if j.spec.uses_model]
        steps = sum(j.iterations - max(1, len(read_jsonl(j.out / "records.jsonl"))) for j in online)
        log.info(
            "%d runs, %d to do (%d finished earlier); %d query the model in %d rollouts (their"
            " duration is estimated once the first is timed)",
            len(jobs),
            len(todo),
            len(jobs) - len(todo),
            len(online),
            steps,
        )
        notice = ExpectationNotice(f"benchmark {out}", steps, concurrency=llm_concurrency)
        bar = tqdm(total=len(todo), desc="runs", disable=not progress, unit="run")
        t0 = time.perf_counter()
        # Model-free runs in worker processes; model runs in this process's threads (one
        # endpoint, one cache, one embedded server) or as Ray tasks, llm_concurrency at once.
        # On Ray the runs execute elsewhere and log their expected duration there.
        lanes = [
            Lane(_run_job, offline, limit=workers),
            Lane(
                functools.partial(_run_job, notice=notice if backend == "local" else None),
                online,
                limit=llm_concurrency,
                shared=True,
            ),
        ]
        for _ in run_jobs(lanes, backend, workers, name=lambda j: str(j.out)):
            bar.update()
        bar.close()
        runs_s = time.perf_counter() - t0
        report = write_reports(jobs, out, reference)
        return {**report, "runs": len(todo), "runs_wall_s": runs_s}


#: Two final costs closer than this count as a tie in the paired comparison [m].
TIE_TOLERANCE = 0.001
#: Bootstrap resamples of the intervals (seeded: the same rows give the same table).
BOOTSTRAP = 2000


def collect_rows(
    jobs: Sequence[Job], labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per iteration of every run.

    Args:
        jobs: The benchmark's runs.
        labels: The ``task`` of the rows per task spec (see :func:`task_labels`); ``None``:
            the spec.

    Returns:
        Rows with task, method, seed, iteration, cost, best_so_far, source, θ, and the
        model accounting of the iteration (samples, parse errors, calls, tokens, seconds).
        A run with a record whose cost is not a finite number is left out (and logged).
    """
    rows = []
    for job in jobs:
        best = math.inf
        records = read_jsonl(job.out / "records.jsonl")[: job.iterations]
        bad = [r for r in records if not _finite(r.get("cost"))]
        if bad:  # written before rollouts were checked (icpi.envs.spec.check_rollout)
            log.warning(
                "%s: a record has the cost %r; the run is left out of the summary",
                job.out,
                bad[0].get("cost"),
            )
            continue
        for rec in records:
            best = min(best, rec["cost"])
            rows.append(
                {
                    "task": (labels or {}).get(job.task, job.task),
                    "method": job.spec.label,
                    "seed": job.seed,
                    "iteration": rec["iteration"],
                    "cost": rec["cost"],
                    "best_so_far": best,
                    "source": rec.get("source", ""),
                    "theta": list(rec["theta"]),
                    "samples": int(rec.get("samples", 0) or 0),
                    "parse_errors": len(rec.get("parse_errors") or []),
                    "model_calls": int(rec.get("model_calls", 0) or 0),
                    "tokens": int(rec.get("prompt_tokens", 0) or 0)
                    + int(rec.get("completion_tokens", 0) or 0),
                    "model_s": float(rec.get("model_s", 0.0) or 0.0),
                }
            )
    return rows


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def bootstrap_ci(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean.

    Args:
        values: The sample (one value per instance).
        seed: Seed of the resampling.

    Returns:
        (low, high); both the mean itself for fewer than two values.
    """
    arr = np.asarray(values, float)
    if len(arr) < 2:
        m = float(arr.mean()) if len(arr) else math.nan
        return m, m
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(BOOTSTRAP, len(arr)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def ratio_ci(
    values: Sequence[float], reference: Sequence[float], seed: int = 0
) -> tuple[float, float] | None:
    """95 % percentile bootstrap interval of mean(values) / mean(reference), paired.

    Args:
        values: One value per instance.
        reference: The reference's value on the same instances.
        seed: Seed of the resampling.

    Returns:
        (low, high), or ``None`` for fewer than two instances. A resample whose reference
        mean is zero counts as an infinite ratio (or 1 where both means are zero).
    """
    from scipy.stats import bootstrap

    a, b = np.asarray(values, float), np.asarray(reference, float)
    if len(a) < 2:
        return None

    def ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        num, den = x.mean(axis=axis), y.mean(axis=axis)
        return np.where(den > 0, num / den, np.where(num > 0, np.inf, 1.0))

    with np.errstate(divide="ignore", invalid="ignore"):  # infinite ratios are kept
        res = bootstrap(
            (a, b), ratio, paired=True, vectorized=True, n_resamples=BOOTSTRAP,
            method="percentile", rng=np.random.default_rng(seed),
        )  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _last_rows(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    last: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        key = (r["task"], r["method"], r["seed"])
        if key not in last or r["iteration"] > last[key]["iteration"]:
            last[key] = r
    return last


def paired(
    rows: Sequence[dict[str, Any]],
    ref: Mapping[int, dict[str, Any]],
    key: str,
    prefix: str,
) -> dict[str, Any]:
    """Wins, ties and losses of one figure against the reference on the same instances.

    Args:
        rows: The method's last rows (one per instance).
        ref: The reference's last row per seed.
        key: The figure compared (``cost``: final; ``best_so_far``).
        prefix: Column prefix.

    Returns:
        ``<prefix>_wins``, ``_ties``, ``_losses`` (tie within :data:`TIE_TOLERANCE`) and the
        paired mean difference with its bootstrap interval (``_diff_mean``, ``_low``,
        ``_high``; negative: lower than the reference).
    """
    diff = [r[key] - ref[r["seed"]][key] for r in rows if r["seed"] in ref]
    low, high = bootstrap_ci(diff)
    return {
        f"{prefix}_wins": sum(d < -TIE_TOLERANCE for d in diff),
        f"{prefix}_ties": sum(abs(d) <= TIE_TOLERANCE for d in diff),
        f"{prefix}_losses": sum(d > TIE_TOLERANCE for d in diff),
        f"{prefix}_diff_mean": float(np.mean(diff)),
        f"{prefix}_diff_low": low,
        f"{prefix}_diff_high": high,
    }


def summarise(
    rows: Sequence[dict[str, Any]],
    reference: str = REFERENCE,
    thresholds: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Per task × method figures over instances (each at its last iteration).

    Args:
        rows: Output of :func:`collect_rows`.
        reference: Method of the paired comparison.
        thresholds: Success threshold per task (see :func:`task_labels`); a task without
            one: :data:`~icpi.envs.spec.SUCCESS_TOLERANCE` (5 mm).

    Returns:
        Rows with task, method, instances; mean final and best-so-far cost with bootstrap
        95 % intervals; success rate (best < 5 mm); wins/ties/losses against
        ``reference`` on the same instances (tie within 1 mm) and the paired mean difference
        with its interval, of the final cost (``vs_ref_*``) and of the best-so-far
        (``vs_ref_best_*``); model answers used (share of model-asking
        iterations whose rollout came from the model), parse rate, tokens per model call
        and model seconds per iteration. Every row has every column (``None`` where a
        figure does not apply: no paired comparison for the reference itself, no model
        figures for a method that asked no model), so CSV, Parquet and tables share one
        schema.
    """
    last = _last_rows(rows)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (task, method, _), r in last.items():
        groups.setdefault((task, method), []).append(r)
    per_iter: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        per_iter.setdefault((r["task"], r["method"]), []).append(r)
    out = []
    for (task, method), rs in groups.items():
        final = [r["cost"] for r in rs]
        best = [r["best_so_far"] for r in rs]
        row: dict[str, Any] = {
            "task": task,
            "method": method,
            "instances": len(rs),
            "final_cost_mean": float(np.mean(final)),
            "final_ci_low": bootstrap_ci(final)[0],
            "final_ci_high": bootstrap_ci(final)[1],
            "best_cost_mean": float(np.mean(best)),
            "best_ci_low": bootstrap_ci(best)[0],
            "best_ci_high": bootstrap_ci(best)[1],
            "success_rate": float(
                np.mean([b < (thresholds or {}).get(task, SUCCESS_TOLERANCE) for b in best])
            ),
        }
        ref = {seed: r for (t, m, seed), r in last.items() if t == task and m == reference}
        if method != reference and any(r["seed"] in ref for r in rs):
            for key, prefix in (("cost", "vs_ref"), ("best_so_far", "vs_ref_best")):
                row.update(paired(rs, ref, key, prefix))
        asked = [r for r in per_iter[(task, method)] if r.get("model_calls", 0) > 0]
        if asked:
            samples = sum(r["samples"] for r in asked)
            row["model_win_rate"] = float(np.mean([r["source"] == "model" for r in asked]))
            row["parse_rate"] = (
                1.0 - sum(r["parse_errors"] for r in asked) / samples if samples else math.nan
            )
            calls = sum(r["model_calls"] for r in asked)
            row["tokens_per_call"] = sum(r["tokens"] for r in asked) / calls
            row["model_s_per_iteration"] = float(np.mean([r["model_s"] for r in asked]))
        out.append(row)
    columns = list(dict.fromkeys(k for row in out for k in row))
    return [{c: row.get(c) for c in columns} for row in out]


def markdown_table(
    summary: Sequence[dict[str, Any]],
    tasks: Sequence[str],
    thresholds: Mapping[str, float] | None = None,
    reference: str = REFERENCE,
) -> str:
    """The paper's Table 1 layout (methods as rows, tasks as columns), then the details.

    Args:
        summary: Output of :func:`summarise`.
        tasks: Column order.
        thresholds: The success threshold per task (named when one differs from 5 mm).
        reference: The method :func:`summarise` paired every other with.

    Returns:
        Markdown: mean final cost [bootstrap 95 % interval] with the mean best-so-far in
        parentheses; then per cell the success rate, the paired wins/ties/losses against
        the reference, and for model-using methods the share of model answers used and the parse
        rate.
    """
    methods = list(dict.fromkeys(s["method"] for s in summary))
    cell = {(s["task"], s["method"]): s for s in summary}

    def grid(text: Callable[[dict[str, Any]], str]) -> list[str]:
        rows = ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        for m in methods:
            cells = [text(cell[t, m]) if (t, m) in cell else "–" for t in tasks]
            rows.append(f"| {m} | " + " | ".join(cells) + " |")
        return rows

    def cost(s: dict[str, Any]) -> str:
        ci = f"[{s['final_ci_low']:.4f}, {s['final_ci_high']:.4f}]"
        return f"{s['final_cost_mean']:.4f} {ci} ({s['best_cost_mean']:.4f})"

    def details(s: dict[str, Any]) -> str:
        text = f"{s['success_rate']:.0%}"
        if s.get("vs_ref_wins") is not None:
            text += f"; {s['vs_ref_wins']}/{s['vs_ref_ties']}/{s['vs_ref_losses']}"
            text += f", {s['vs_ref_best_wins']}/{s['vs_ref_best_ties']}/{s['vs_ref_best_losses']}"
        if s.get("model_win_rate") is not None:
            text += f"; model {s['model_win_rate']:.0%}, parse {s['parse_rate']:.0%}"
        return text

    lines = [
        "Mean final cost [m], bootstrap 95 % interval in brackets, mean best-so-far in"
        " parentheses.",
        "",
        *grid(cost),
        "",
        f"Success rate (best < {success_text(tasks, thresholds)}); against {reference} on the"
        " same instances, wins/ties/losses of the final cost, then of the best-so-far (tie"
        f" within {TIE_TOLERANCE * 1000:g} mm); for model-using methods"
        " `model` = share of model-asking iterations whose rollout came from the model,"
        " `parse` = share of completions that parsed.",
        "",
        *grid(details),
    ]
    usage = [s for s in summary if s.get("tokens_per_call") is not None]
    if usage:
        lines += [
            "",
            "| task | method | tokens per call | model s per iteration |",
            "|---|---|---|---|",
        ]
        for s in usage:
            lines.append(
                f"| {s['task']} | {s['method']} | {s['tokens_per_call']:.0f} |"
                f" {s['model_s_per_iteration']:.2f} |"
            )
    n = sorted({s["instances"] for s in summary})
    lines += ["", f"Instances per cell: {', '.join(map(str, n))}."]
    return "\n".join(lines) + "\n"


def plot_curves(rows: Sequence[dict[str, Any]], tasks: Sequence[str], path: Path) -> None:
    """Mean cost and mean best-so-far against iteration, with bootstrap 95 % bands.

    Args:
        rows: Output of :func:`collect_rows`.
        tasks: Panel order (one column per task; top row cost, bottom row best-so-far).
        path: PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, len(tasks), figsize=(4.2 * len(tasks), 6.4), squeeze=False, sharex=True
    )
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for col, task in enumerate(tasks):
        for k, m in enumerate(methods):
            for row, key in enumerate(("cost", "best_so_far")):
                pts: dict[int, list[float]] = {}
                for r in rows:
                    if r["task"] == task and r["method"] == m:
                        pts.setdefault(r["iteration"], []).append(r[key])
                if not pts:
                    continue
                its = sorted(pts)
                mean = [np.mean(pts[i]) for i in its]
                band = [bootstrap_ci(pts[i]) for i in its]
                ax = axes[row][col]
                colour = colours[k % len(colours)]
                ax.plot(its, mean, label=m, marker=".", color=colour)
                ax.fill_between(its, [b[0] for b in band], [b[1] for b in band], alpha=0.15,
                                color=colour)  # fmt: skip
        axes[0][col].set_title(task)
        axes[1][col].set_xlabel("iteration")
        for row in (0, 1):
            axes[row][col].set_yscale("log")
            axes[row][col].grid(True, alpha=0.3)
    axes[0][0].set_ylabel("mean cost [m]")
    axes[1][0].set_ylabel("mean best-so-far [m]")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def task_labels(specs: Sequence[str]) -> tuple[dict[str, str], dict[str, float]]:
    """The name of each task in a benchmark's tables, and its success threshold.

    Args:
        specs: Task specs (shipped ids, ``path/file.py:Class``, ...).

    Returns:
        ``({spec: label}, {label: success threshold})``; the label is the task's id, or
        its folder name (:func:`task_dir_name`) where two specs share an id.
    """
    tasks = {t: load_task(t) for t in specs}
    ids = [task.task_id for task in tasks.values()]
    labels = {
        t: task.task_id if ids.count(task.task_id) == 1 else task_dir_name(t)
        for t, task in tasks.items()
    }
    return labels, {labels[t]: success_threshold(task) for t, task in tasks.items()}


def success_text(tasks: Sequence[str], thresholds: Mapping[str, float] | None) -> str:
    """How a table states its success threshold: ``5 mm``, or each task's where one differs.

    Args:
        tasks: Task labels.
        thresholds: Threshold per label (missing: the default).

    Returns:
        E.g. ``5 mm`` or ``the task's success threshold: putt 0.02, slide 0.005``.
    """
    values = {t: (thresholds or {}).get(t, SUCCESS_TOLERANCE) for t in tasks}
    if all(v == SUCCESS_TOLERANCE for v in values.values()):
        return f"{SUCCESS_TOLERANCE * 1000:g} mm"
    return "the task's success threshold: " + ", ".join(f"{t} {v:g}" for t, v in values.items())


def write_reports(jobs: Sequence[Job], out: Path, reference: str = REFERENCE) -> dict[str, Any]:
    """Write results.parquet, summary.csv, summary.md and curves.png.

    Args:
        jobs: The benchmark's runs.
        out: Benchmark directory.
        reference: The method the summary pairs every other with.

    Returns:
        The report paths and the summary rows.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    specs = list(dict.fromkeys(j.task for j in jobs))
    labels, thresholds = task_labels(specs)
    rows = collect_rows(jobs, labels)
    tasks = [labels[t] for t in specs]
    pq.write_table(pa.Table.from_pylist(rows), out / "results.parquet")
    summary = summarise(rows, reference, thresholds)
    pacsv.write_csv(pa.Table.from_pylist(summary), out / "summary.csv")
    table = markdown_table(summary, tasks, thresholds, reference)
    (out / "summary.md").write_text(table)
    plot_curves(rows, tasks, out / "curves.png")
    return {"summary": summary, "table": table, "out": str(out)}
