"""``icpi bench --preset model-quality``: what a method makes of a model of known quality.

The calibration proposer (:mod:`icpi.manipulation.calibration`; not a language model)
answers every prompt with the correction towards a near-optimal θ* of the instance plus
noise of σ percent of each θ range, or uniform corrections (``random``), or none
(``zero``). This preset starts one on loopback, searches θ* of every instance first, and
runs ``icpi`` and ``icpi+`` against it at σ ∈ {0, 1, 3, 10} %, ``random`` and ``zero``
(with four ablations: ``icpi+`` with the paper's percent/centimetre prompt at σ = 0 and
1 %; ``icpi+[sensitivity=false]``, whose θ units are only as fine as its e units, at every
σ and ``random``; ``icpi+[zoom=false;sensitivity=false]``, whose units stay permille and
millimetres, and ``icpi+[judge=off]``, which trusts every parsed answer, at σ = 0, 3 % and
``random``);
``icpi+`` against the embedded SmolLM2-135M as well; and ``icpi+[model=off]``, the
reference every row is paired with.

Each proposer gets its own benchmark directory under the output (resumable like any
benchmark); ``model-quality.md`` holds the table of the issue's targets: per task,
proposer and method, the mean best-so-far cost after 5 and 10 rollouts (what a run with
``final_best`` ends on one rollout later) and the mean final cost after 20, the median
rollouts to below 5 mm, the success rate, the share of rollouts whose θ came from the
model, the share of the model's rollouts that improved on the best so far (beside that of
the numeric sources' rollouts in the same runs: does the arbiter give rollouts to a source
that delivers?), and paired wins/ties/losses against ``icpi+[model=off]`` on the same
instances.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from icpi.manipulation.bench import TIE_TOLERANCE, collect_rows, ratio_ci, run_benchmark
from icpi.manipulation.calibration import Mode, OptimumStore, serve

log = logging.getLogger(__name__)

#: The reference of every comparison: the same method without a model.
REFERENCE = "icpi+[model=off]"
#: Proposers: label -> calibration model name (``None``: the configured model, by default
#: the embedded SmolLM2), and the methods run against it.
#: The ablations: ``judge=off`` trusts the model whenever it parses (what the arbiter adds),
#: ``sensitivity=false`` refines θ's units only as far as e's (what matching θ's resolution
#: to the outcome's sensitivity adds), ``zoom=false;sensitivity=false`` keeps permille and
#: millimetres throughout (what units that follow the search add), and
#: ``theta_steps=100;e_unit=0.01;zoom=false;sensitivity=false`` is the paper's prompt (what
#: the finer, refining encoding adds); ``escape=0`` never leaves the best θ's
#: neighbourhood (what the escape adds, with a noisy model).
PAPER_PROMPT = "icpi+[theta_steps=100;e_unit=0.01;zoom=false;sensitivity=false]"
TRUSTING = "icpi+[judge=off]"
COARSE_THETA = "icpi+[sensitivity=false]"
FIXED_UNITS = "icpi+[zoom=false;sensitivity=false]"
NO_ESCAPE = "icpi+[escape=0]"
ABLATIONS = (COARSE_THETA, FIXED_UNITS, TRUSTING)
PROPOSERS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "sigma0": ("calibration-sigma0", ("icpi", "icpi+", *ABLATIONS, PAPER_PROMPT)),
    "sigma1": ("calibration-sigma1", ("icpi", "icpi+", COARSE_THETA, PAPER_PROMPT)),
    "sigma3": ("calibration-sigma3", ("icpi", "icpi+", *ABLATIONS)),
    "sigma10": ("calibration-sigma10", ("icpi", "icpi+", COARSE_THETA, NO_ESCAPE)),
    "random": ("calibration-random", ("icpi", "icpi+", *ABLATIONS, NO_ESCAPE)),
    "zero": ("calibration-zero", ("icpi", "icpi+")),
    "smollm2": (None, ("icpi+",)),
}
#: Rollouts after which the best-so-far is reported.
CHECKPOINTS = (5, 10)
#: A rollout below this cost is a success [m].
SUCCESS = 0.005
#: Rollouts no candidate source proposed: the start θ and the final re-run of the best.
NOT_PROPOSED = frozenset({"initial", "best"})


def run_model_quality(
    tasks: Sequence[str],
    seeds: Sequence[int],
    iterations: int,
    out: Path,
    llm: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
    workers: int = 2,
    llm_concurrency: int = 2,
    progress: bool = True,
    proposers: Sequence[str] | None = None,
    store: OptimumStore | None = None,
    draws: int = 1,
) -> dict[str, Any]:
    """Run the preset (or resume it) and write ``model-quality.md``.

    Args:
        tasks: Task specs (shipped tasks: θ* is searched on their env).
        seeds: Instance seeds.
        iterations: Rollouts per run.
        out: Output folder (one benchmark directory per proposer, and ``model-off``).
        llm: The user's LLM settings (the model of the ``smollm2`` row: unset, the
            embedded one).
        run: The user's run settings.
        workers: Processes for the model-free runs and the θ* search.
        llm_concurrency: Model-using runs in flight at once.
        progress: Show progress bars.
        proposers: Labels of :data:`PROPOSERS` to run (default: all).
        store: Where θ* is kept (default: ``~/.cache/icpi/calibration``).
        draws: Noise draws of each noisy proposer (σ > 0, ``random``): draw k > 0 asks
            ``calibration-…-draw<k>`` into the folder ``<label>-draw<k>``; rows pool them.

    Returns:
        ``table`` (Markdown), ``rows`` (the table's rows) and ``out``.
    """
    labels = list(proposers or PROPOSERS)
    unknown = [p for p in labels if p not in PROPOSERS]
    from icpi.errors import ConfigError

    if unknown:
        raise ConfigError(f"unknown proposer(s) {unknown}; choose from {', '.join(PROPOSERS)}")
    if draws < 1:
        raise ConfigError(f"draws must be >= 1, got {draws}")
    out.mkdir(parents=True, exist_ok=True)
    store = store or OptimumStore()

    def bench(folder: str, methods: Sequence[str], layer: Mapping[str, Any] | None, n: int) -> None:
        run_benchmark(
            tasks, methods, seeds, iterations, out / folder, llm=layer, run=run,
            workers=workers, llm_concurrency=n, progress=progress,
        )  # fmt: skip

    bench("model-off", [REFERENCE], None, 1)
    calibrated = [p for p in labels if PROPOSERS[p][0] is not None]
    if calibrated:
        store.prepare(tasks, seeds, workers=workers)
        with serve(0, store) as endpoint:
            for label in calibrated:
                model, methods = PROPOSERS[label]
                for folder, name in draw_folders(label, draws):
                    log.info("model quality: %s", folder)
                    layer = {**dict(llm or {}), "base_url": endpoint.base_url, "model": name}
                    bench(folder, methods, layer, llm_concurrency)
    for label in labels:
        model, methods = PROPOSERS[label]
        if model is None:  # one server answers one request at a time
            bench(label, methods, llm, 1)
    rows = quality_rows(out, tasks, seeds, iterations, labels, draws)
    table = quality_table(rows)
    (out / "model-quality.md").write_text(table)
    return {"table": table, "rows": rows, "out": str(out)}


def draw_folders(label: str, draws: int) -> list[tuple[str, str | None]]:
    """The benchmark folders and model names of a proposer's noise draws.

    Args:
        label: A label of :data:`PROPOSERS`.
        draws: Draws asked for (only noisy calibration proposers have more than one).

    Returns:
        ``(folder, model)`` per draw: ``(label, model)``, then ``(label-draw<k>,
        model-draw<k>)``.
    """
    model = PROPOSERS[label][0]
    mode = Mode.parse(model) if model is not None else None
    noisy = mode is not None and (mode.kind == "random" or mode.sigma > 0)
    extra = [(f"{label}-draw{k}", f"{model}-draw{k}") for k in range(1, draws)] if noisy else []
    return [(label, model), *extra]


def load_runs(
    folder: Path,
    tasks: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    iterations: int,
) -> dict[tuple[str, str], dict[int, list[dict[str, Any]]]]:
    """The rows of every finished run of one benchmark directory of the preset.

    Args:
        folder: The benchmark directory (one proposer's).
        tasks: Task specs.
        methods: Method specs.
        seeds: Instance seeds.
        iterations: Rollouts per run.

    Returns:
        Per (task, method label), per seed, the run's rows (runs not found are left out).
    """
    from icpi.manipulation.bench import Job, task_dir_name
    from icpi.manipulation.config import parse_method_spec

    jobs = []
    for t in tasks:
        for m in methods:
            spec = parse_method_spec(m)
            for s in seeds:
                path = folder / "runs" / task_dir_name(t) / spec.slug / f"seed-{s}"
                jobs.append(Job(t, spec, s, iterations, path, {}, {}))
    grouped: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for r in collect_rows([j for j in jobs if (j.out / "records.jsonl").exists()]):
        grouped.setdefault((r["task"], r["method"]), {}).setdefault(r["seed"], []).append(r)
    return grouped


def quality_rows(
    out: Path,
    tasks: Sequence[str],
    seeds: Sequence[int],
    iterations: int,
    labels: Sequence[str],
    draws: int = 1,
) -> list[dict[str, Any]]:
    """The table's rows from the benchmark directories of the preset.

    Args:
        out: The preset's output folder.
        tasks: Task specs.
        seeds: Instance seeds.
        iterations: Rollouts per run.
        labels: Proposers run.
        draws: Noise draws run (:func:`draw_folders`), pooled per row.

    Returns:
        One row per task, proposer and method (the reference first, once per task).
    """
    ref_runs = load_runs(out / "model-off", tasks, [REFERENCE], seeds, iterations)
    rows = []
    for task in tasks:
        ref = ref_runs.get((task, REFERENCE), {})
        rows.append(_row(task, "none", REFERENCE, {(s, 0): r for s, r in ref.items()}, ref))
        for label in labels:
            methods = PROPOSERS[label][1]
            pooled: dict[str, dict[tuple[int, int], list[dict[str, Any]]]] = {}
            for k, (folder, _) in enumerate(draw_folders(label, draws)):
                runs = load_runs(out / folder, [task], methods, seeds, iterations)
                for method in methods:
                    for s, r in runs.get((task, method), {}).items():
                        pooled.setdefault(method, {})[(s, k)] = r
            for method in methods:
                if method in pooled:
                    rows.append(_row(task, label, method, pooled[method], ref))
    return rows


def _row(
    task: str,
    proposer: str,
    method: str,
    runs: Mapping[tuple[int, int], list[dict[str, Any]]],
    ref: Mapping[int, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The figures of one (task, proposer, method) over its (seed, draw) runs."""

    def at(rs: list[dict[str, Any]], k: int) -> float:
        return float(rs[min(k, len(rs)) - 1]["best_so_far"])

    def final(rs: list[dict[str, Any]]) -> float:
        return float(rs[-1]["cost"])

    figures: dict[str, Callable[[list[dict[str, Any]]], float]] = {
        **{f"best@{k}": functools.partial(at, k=k) for k in CHECKPOINTS},
        "final": final,
    }
    seeds = sorted(runs)
    row: dict[str, Any] = {
        "task": task,
        "proposer": proposer,
        "method": method,
        "instances": len({s for s, _ in seeds}),
        "draws": len({k for _, k in seeds}),
    }
    for name, fig in figures.items():
        values = [fig(runs[s]) for s in seeds]
        row[name] = float(np.mean(values)) if values else math.nan
        if proposer == "none":
            continue
        by_instance: dict[int, list[float]] = {}  # the draws of one instance together
        for s, value in zip(seeds, values, strict=True):
            if s[0] in ref:
                by_instance.setdefault(s[0], []).append(value)
        pairs = [(v, fig(ref[i])) for i, vs in by_instance.items() for v in vs]
        d = [a - b for a, b in pairs]
        row[f"wtl {name}"] = (
            sum(x < -TIE_TOLERANCE for x in d),
            sum(abs(x) <= TIE_TOLERANCE for x in d),
            sum(x > TIE_TOLERANCE for x in d),
        )
        ref_mean = float(np.mean([b for _, b in pairs])) if pairs else math.nan
        row[f"ratio {name}"] = row[name] / ref_mean if ref_mean > 0 else math.nan
        row[f"ratio ci {name}"] = ratio_ci(
            [float(np.mean(v)) for v in by_instance.values()], [fig(ref[i]) for i in by_instance]
        )
    to_success = [
        next((r["iteration"] + 1 for r in runs[s] if r["cost"] < SUCCESS), math.inf) for s in seeds
    ]
    row["median rollouts to 5 mm"] = float(np.median(to_success)) if seeds else math.nan
    row["success"] = float(np.mean([min(r["cost"] for r in runs[s]) < SUCCESS for s in seeds]))
    asked = [r for s in seeds for r in runs[s] if r.get("model_calls", 0) > 0]
    early = [r for r in asked if r["iteration"] < CHECKPOINTS[0]]
    for name, part in (("model share", asked), ("model share early", early)):
        row[name] = float(np.mean([r["source"] == "model" for r in part])) if part else None
    improved: dict[bool, list[bool]] = {True: [], False: []}  # by: came from the model
    for s in seeds:
        rs = sorted(runs[s], key=lambda r: r["iteration"])
        for before, r in itertools.pairwise(rs):
            if r["source"] not in NOT_PROPOSED:
                improved[r["source"] == "model"].append(r["cost"] < before["best_so_far"])
    for name, came in (("model improved", improved[True]), ("numeric improved", improved[False])):
        row[name] = float(np.mean(came)) if came else None
    return row


def quality_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of :func:`quality_rows`.

    Args:
        rows: The rows.

    Returns:
        One table per task: cost after 5 and 10 rollouts (best so far) and after 20
        (final), in mm, with the ratio to ``icpi+[model=off]`` and the paired W/T/L; median
        rollouts to 5 mm; success rate; the share of model-asking rollouts whose θ came
        from the model, over the run and in its first 5 rollouts; the share of the model's
        rollouts, and in parentheses of the numeric sources' rollouts, that improved on the
        best so far (the start θ and the final re-run count for neither).
    """

    def bound(ratio: float) -> str:
        return "∞" if math.isinf(ratio) else f"{ratio:.0f}" if ratio >= 100 else f"{ratio:.2f}"

    def pct(share: float | None) -> str:
        return "–" if share is None else f"{share:.0%}"

    def mm(row: dict[str, Any], name: str) -> str:
        text = f"{row[name] * 1000:.2f}"
        if row.get(f"ratio {name}") is not None:
            w, t, l_ = row[f"wtl {name}"]
            ci = row.get(f"ratio ci {name}")
            interval = "" if ci is None else f" [{bound(ci[0])}, {bound(ci[1])}]"
            text += f" ({row[f'ratio {name}']:.2f}×{interval}; {w}/{t}/{l_})"
        return text

    lines = [
        "Cost in mm: best so far after 5 and 10 rollouts, final after the last; in"
        f" parentheses the ratio to `{REFERENCE}` on the same instances and the paired"
        f" wins/ties/losses against it (tie within {TIE_TOLERANCE * 1000:g} mm)."
        " `calibration-*` proposers are an instrument of known quality, not language models.",
        "",
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        lines += [
            f"### {task}",
            "",
            "| proposer | method | after 5 | after 10 | final | median rollouts to 5 mm |"
            " success | model share (in the first 5) | improved: model (numeric) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["task"] == task):
            share = "–"
            if r["model share"] is not None:
                share = f"{r['model share']:.0%} ({r['model share early'] or 0:.0%})"
            improved = pct(r["model improved"])
            if r["numeric improved"] is not None:
                improved += f" ({pct(r['numeric improved'])})"
            n = r["median rollouts to 5 mm"]
            to5 = "never" if math.isinf(n) else f"{n:g}"
            proposer = r["proposer"] if r["proposer"] != "smollm2" else "SmolLM2-135M"
            lines.append(
                f"| {proposer} | {r['method']} | {mm(r, 'best@5')} | {mm(r, 'best@10')} |"
                f" {mm(r, 'final')} | {to5} | {r['success']:.0%} | {share} | {improved} |"
            )
        lines.append("")
    n = sorted({r["instances"] for r in rows})
    lines.append(f"Instances per row: {', '.join(map(str, n))}.")
    if any(r["draws"] > 1 for r in rows):
        k = max(r["draws"] for r in rows)
        lines.append(
            f"Noisy proposers (σ > 0, random): {k} noise draws per instance, pooled; W/T/L"
            " count every (instance, draw) pair."
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "PROPOSERS",
    "REFERENCE",
    "load_runs",
    "quality_rows",
    "quality_table",
    "run_model_quality",
]
