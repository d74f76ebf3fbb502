"""Build the report page of a run or benchmark directory (one self-contained HTML file)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icpi.core.files import write_text_atomic
from icpi.report.media import Clip, ClipError, ClipLimit, ClipMaker, VideoFormat
from icpi.report.rundata import (
    ReportError,
    Run,
    as_dict,
    is_benchmark,
    load_benchmark,
    load_run,
)

log = logging.getLogger(__name__)

#: Default number of distinct rollouts rendered as clips (``--max-videos``).
DEFAULT_MAX_VIDEOS = 40
REPORT_NAME = "report.html"


@dataclass
class ClipView:
    """One clip slot of a run: the first or the best rollout."""

    title: str
    """``first rollout``, ``best rollout`` or ``first rollout (= best)``."""
    index: int
    """Position of the rollout in the run's records."""
    iteration: int
    """Its iteration number."""
    recorded_cost: float
    """Cost in ``records.jsonl`` [m]."""
    clip: Clip | None = None
    """The re-simulated clip, or ``None`` when not rendered."""
    note: str = ""
    """Why there is no clip."""
    limited: bool = False
    """Whether the clip limit left it out."""

    @property
    def check(self) -> str:
        """``identical``, ``differs`` or ``""`` (not re-simulated)."""
        if self.clip is None:
            return ""
        return "identical" if self.clip.cost == self.recorded_cost else "differs"

    @property
    def difference(self) -> float:
        """Re-simulated minus recorded cost [m] (0 when not re-simulated)."""
        return self.clip.cost - self.recorded_cost if self.clip is not None else 0.0


@dataclass
class RunView:
    """What the page shows of one run."""

    run: Run
    """The run."""
    anchor: str
    """HTML id of its card."""
    theta_head: list[str]
    """Column heads of θ (name [unit])."""
    e_head: list[str]
    """Column heads of e."""
    rows: list[list[str]]
    """Formatted per-iteration rows."""
    summary: list[tuple[str, str]]
    """Formatted (key, value) pairs of its summary."""
    summary_derived: bool
    """Whether the summary was derived from the records (no ``summary.json``)."""
    instance: str
    """Formatted goal and physics."""
    clips: list[ClipView] = field(default_factory=list)
    """First and best rollout."""
    prompts: list[dict[str, Any]] = field(default_factory=list)
    """Model iterations: prompt, completions, selection."""
    figure: str = ""
    """Per-run curves (SVG data URI; single-run pages only)."""


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    """The HTML file."""
    kind: str
    """``run`` or ``benchmark``."""
    runs: int
    """Runs shown."""
    clips: int
    """Distinct rollouts rendered."""
    identical: int
    """Clip slots whose re-simulated cost equals the recorded one exactly."""
    differing: int
    """Clip slots whose re-simulated cost differs."""
    max_abs_difference: float
    """Largest |re-simulated − recorded| cost [m]."""
    bytes: int
    """Size of the page."""
    notes: list[str]
    """Page-level notes (fallbacks, limits)."""


def fmt(value: Any) -> str:
    """Format a value for a table cell.

    Args:
        value: A number, bool, string, list, dict or ``None``.

    Returns:
        The text (``–`` for missing or non-finite values).
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def _theta_spec(run: Run, maker: ClipMaker) -> tuple[list[str], list[str], Any, Any]:
    """θ names, units and bounds (``None`` when the task cannot be rebuilt)."""
    names = list(run.config.get("theta_names") or [])
    units = list(run.config.get("theta_units") or [])
    low = high = None
    if run.task is not None:
        try:
            spec = maker.task(run.task).theta_spec
        except ClipError:
            spec = None
        if spec is not None:
            names = names or list(spec.names)
            units = units or list(spec.units)
            low, high = spec.low, spec.high
    dim = max((len(r.get("theta") or []) for r in run.records), default=0)
    names += [f"θ{j}" for j in range(len(names), dim)]
    units += ["" for _ in range(len(units), dim)]
    return names[:dim], units[:dim], low, high


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):  # chat messages
        return "\n\n".join(
            f"[{m.get('role', '?')}]\n{m.get('content', '')}" if isinstance(m, dict) else str(m)
            for m in prompt
        )
    return "" if prompt is None else str(prompt)


def _completions(attempt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each completion, its parse error (``None``: valid, ``""``: unknown), whether chosen."""
    samples = [str(x) for x in attempt.get("samples") or []]
    errors = list(attempt.get("parse_errors") or [])
    if len(errors) != len(samples):  # not aligned (older files): show no per-sample verdict
        errors = [""] * len(samples)
    chosen = as_dict(attempt.get("selection")).get("index")
    return [
        {"text": text, "error": err, "selected": i == chosen}
        for i, (text, err) in enumerate(zip(samples, errors, strict=True))
    ]


def _prompts(run: Run) -> list[dict[str, Any]]:
    out = []
    for it in sorted(run.attempts):
        a = run.attempts[it]
        if a.get("prompt") is None:
            continue
        llm = as_dict(a.get("llm"))
        selection = as_dict(a.get("selection"))
        completions = _completions(a)
        out.append(
            {
                "iteration": it,
                "source": a.get("source", ""),
                "prompt": _prompt_text(a.get("prompt")),
                "completions": completions,
                "invalid": sum(bool(c["error"]) for c in completions),
                "selection": fmt(selection) if selection else "–",
                "llm": fmt({k: llm[k] for k in ("calls", "prompt_tokens", "cached") if k in llm}),
            }
        )
    return out


def _iteration_rows(run: Run, dim: int) -> tuple[list[list[str]], int]:
    e_dim = max((len(r.get("e") or []) for r in run.records), default=0)
    rows, best = [], math.inf
    for i, r in enumerate(run.records):
        best = min(best, float(r["cost"]))
        theta = list(r.get("theta") or [])
        e = list(r.get("e") or [])
        rows.append(
            [
                str(r.get("iteration", i)),
                str(r.get("source", "")),
                *[f"{theta[j]:.4f}" if j < len(theta) else "–" for j in range(dim)],
                *[f"{e[j]:+.4f}" if j < len(e) else "–" for j in range(e_dim)],
                f"{float(r['cost']):.4f}",
                f"{best:.4f}",
                fmt(r.get("clipped")),
                "–" if r.get("answer") is None else str(r["answer"]).strip() or "(empty)",
                str(len(r.get("parse_errors") or [])) if "parse_errors" in r else "–",
            ]
        )
    return rows, e_dim


def _clip_slots(run: Run) -> list[ClipView]:
    def slot(title: str, i: int) -> ClipView:
        return ClipView(title, i, int(run.records[i].get("iteration", i)), run.costs[i])

    best = run.best_index
    if best == 0:
        return [slot("first rollout (= best)", 0)]
    return [slot("first rollout", 0), slot("best rollout", best)]


def _fill_clip(view: ClipView, run: Run, maker: ClipMaker, reason: str | None) -> None:
    if reason is not None:
        view.note = reason
        return
    record = run.records[view.index]
    instance = run.config.get("instance")
    if run.task is None or not isinstance(instance, dict) or "theta" not in record:
        view.note = "not re-simulated: the run records no task, instance or θ"
        return
    try:
        view.clip = maker.clip(run.task, instance, record["theta"])
    except ClipLimit as err:
        view.note = f"{err}; raise --max-videos to see it"
        view.limited = True
    except ClipError as err:
        view.note = f"not re-simulated: {err}"


def _run_view(run: Run, index: int, maker: ClipMaker, single: bool) -> RunView:
    names, units, low, high = _theta_spec(run, maker)
    rows, e_dim = _iteration_rows(run, len(names))
    summary, derived = run.summary_or_derived()
    instance = as_dict(run.config.get("instance"))
    view = RunView(
        run=run,
        anchor=f"run-{index}",
        theta_head=[f"{n} [{u}]" if u else n for n, u in zip(names, units, strict=True)],
        e_head=[f"e{j} [m]" for j in range(e_dim)],
        rows=rows,
        summary=[(str(k), fmt(v)) for k, v in summary.items()],
        summary_derived=derived,
        instance=fmt({"goal": instance.get("goal"), "physics": instance.get("physics")}),
        clips=_clip_slots(run),
        prompts=_prompts(run),
    )
    if single:
        from icpi.report.figures import run_curves

        view.figure = run_curves(run.records, names, low, high)
    return view


def _rows(runs: Sequence[Run], notes: list[str]) -> list[dict[str, Any]]:
    """One row per iteration of every run, collected by the benchmark's own code.

    Rows name each task by its id (as the benchmark's tables do). Records too old for
    :func:`icpi.manipulation.bench.collect_rows` (without ``theta`` or ``iteration``) are
    collected here instead, with the same keys, and a note says so.
    """
    from icpi.manipulation.bench import Job, collect_rows
    from icpi.manipulation.config import MethodSpec

    jobs = [
        Job(
            task=str(r.task),
            spec=MethodSpec(r.label, r.method, {}, {}, {}),
            seed=int(r.seed or 0),
            iterations=int(as_dict(r.config.get("run")).get("iterations") or len(r.records)),
            out=r.path,
            run={},
            llm={},
        )
        for r in runs
    ]
    try:
        return collect_rows(jobs, {str(r.task): r.name for r in runs})
    except (KeyError, TypeError, ValueError) as err:
        notes.append(f"runs too old for bench.collect_rows ({err!r}): rows read leniently")
    rows = []
    for job, run in zip(jobs, runs, strict=True):
        best = math.inf
        for i, rec in enumerate(run.records[: job.iterations]):
            best = min(best, float(rec["cost"]))
            rows.append(
                {
                    "task": run.name,
                    "method": job.spec.label,
                    "seed": job.seed,
                    "iteration": int(rec.get("iteration", i)),
                    "cost": float(rec["cost"]),
                    "best_so_far": best,
                    "source": rec.get("source", ""),
                    "theta": list(rec.get("theta") or []),
                }
            )
    return rows


def _benchmark_table(
    runs: Sequence[Run], notes: list[str], maker: ClipMaker
) -> tuple[list[str], list[list[str]], str]:
    """The benchmark's own summary (every column of ``bench.summarise``) and its curves."""
    from icpi.manipulation.bench import summarise
    from icpi.report.figures import benchmark_curves

    rows = _rows(runs, notes)
    try:
        summary = summarise(rows, thresholds=_thresholds(runs, maker))
    except (KeyError, TypeError, ValueError) as err:
        notes.append(f"bench.summarise failed on these runs ({err!r}): no summary table")
        summary = []
    heads, cells = compact_table(summary)
    tasks = list(dict.fromkeys(r.name for r in runs))
    return heads, cells, benchmark_curves(rows, tasks)


def _thresholds(runs: Sequence[Run], maker: ClipMaker) -> dict[str, float]:
    """Each task's success threshold: recorded in its runs' summaries, else its task's."""
    from icpi.envs.spec import success_threshold

    out: dict[str, float] = {}
    for r in runs:
        value = r.summary.get("success_threshold")
        if r.name in out:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[r.name] = float(value)
        elif r.task is not None:
            try:
                out[r.name] = success_threshold(maker.task(r.task))
            except (ClipError, ValueError):
                continue
    return out


def compact_table(summary: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The summary as a table that fits the page: every column, related ones in one cell.

    A column followed by its ``…_low`` and ``…_high`` interval becomes one cell ``mean
    [low, high]``; ``…_wins``, ``…_ties``, ``…_losses`` become one ``W/T/L`` cell. Every
    other column stays as it is, so a column ``bench.summarise`` adds appears too.

    Args:
        summary: Rows of :func:`icpi.manipulation.bench.summarise`.

    Returns:
        Column heads and formatted rows.
    """
    columns = list(dict.fromkeys(k for s in summary for k in s))
    groups: list[tuple[str, list[str]]] = []
    used: set[str] = set()
    for i, c in enumerate(columns):
        if c in used:
            continue
        low, high = [*columns[i + 1 : i + 3], "", ""][:2]
        stem = c.removesuffix("_wins")
        if low.endswith("_low") and high == low.removesuffix("_low") + "_high":
            group = [c, low, high]
            head = f"{c} [95 % CI]"
        elif c.endswith("_wins") and {f"{stem}_ties", f"{stem}_losses"} <= set(columns):
            group = [c, f"{stem}_ties", f"{stem}_losses"]
            head = f"{stem} W/T/L"
        else:
            group, head = [c], c
        used.update(group)
        groups.append((head, group))

    def cell(row: Mapping[str, Any], group: list[str]) -> str:
        values = [row.get(c) for c in group]
        if len(group) == 1:
            return fmt(values[0])
        if all(v is None for v in values):
            return "–"
        if group[0].endswith("_wins"):
            return "/".join(fmt(v) for v in values)
        return f"{fmt(values[0])} [{fmt(values[1])}, {fmt(values[2])}]"

    return [h for h, _ in groups], [[cell(row, g) for _, g in groups] for row in summary]


def _clip_order(runs: Sequence[Run]) -> list[int]:
    """Run positions in rendering order: each (task, method)'s first seed, then the second...

    So a clip limit still covers every cell of the table.
    """
    rank: dict[int, int] = {}
    seen: dict[tuple[str | None, str], int] = {}
    for i, r in enumerate(runs):
        group = (r.name, r.label)
        rank[i] = seen.get(group, 0)
        seen[group] = rank[i] + 1
    return sorted(range(len(runs)), key=lambda i: (rank[i], i))


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("icpi.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["breakable"] = breakable
    return env


def breakable(text: str) -> Any:
    """HTML of a column name that may wrap after each underscore (narrow tables).

    Args:
        text: The name.

    Returns:
        Escaped markup with a word-break opportunity after every ``_``.
    """
    from markupsafe import Markup, escape

    return Markup(str(escape(text)).replace("_", "_<wbr>"))


def write_report(
    directory: Path | str,
    out: Path | str | None = None,
    max_videos: int = DEFAULT_MAX_VIDEOS,
    video_format: VideoFormat = "auto",
) -> ReportResult:
    """Write the HTML report of a run directory or a benchmark directory.

    Args:
        directory: A run directory (``records.jsonl``, ...) or a benchmark directory
            (``runs/<task>/<method>/seed-<k>/``).
        out: The HTML file; default ``<directory>/report.html``.
        max_videos: Distinct rollouts rendered at most (0: no clips). Clips go first to
            each task × method's first seed, then to the next seeds.
        video_format: ``auto`` (MP4, GIF when MP4 cannot be written), ``mp4`` or ``gif``.

    Returns:
        What was written.

    Raises:
        ReportError: If the directory is neither kind, cannot be read, or ``mp4`` was
            asked for and cannot be written. Nothing is written then.
    """
    from icpi.envs.gl import choose_gl_backend

    t0 = time.perf_counter()
    if max_videos > 0:
        choose_gl_backend()  # EGL or OSMesa, unless MuJoCo is loaded already
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f"{directory} is not a directory")
    if max_videos < 0:
        raise ReportError(f"--max-videos must be 0 or more, got {max_videos}")
    target = Path(out) if out is not None else directory / REPORT_NAME
    from icpi.language.config import is_language_run

    if is_language_run(directory):
        from icpi.report.language import write_language_report

        done = write_language_report(directory, target)
        return ReportResult(
            path=target, kind="language run", runs=1, clips=0, identical=0, differing=0,
            max_abs_difference=0.0, bytes=done["bytes"], notes=done["notes"],
        )  # fmt: skip
    notes: list[str] = []
    if is_benchmark(directory):
        kind, runs = "benchmark", load_benchmark(directory, left_out=notes)
    elif (directory / "records.jsonl").exists():
        kind, runs = "run", [load_run(directory)]
    else:
        raise ReportError(
            f"{directory} is neither a run directory (records.jsonl) nor a benchmark"
            " directory (runs/<task>/<method>/seed-<k>/)"
        )
    maker = ClipMaker(video_format, max_clips=max_videos)
    views = [_run_view(r, i, maker, single=kind == "run") for i, r in enumerate(runs)]
    no_clips = "not rendered: --max-videos 0" if max_videos == 0 else None
    for i in _clip_order(runs):
        for slot in views[i].clips:
            _fill_clip(slot, runs[i], maker, no_clips)
    slots = [c for v in views for c in v.clips]
    if any(c.limited for c in slots):
        notes.append(
            f"{maker.rendered} distinct rollouts rendered (--max-videos {max_videos});"
            " the others say so where their clip would be"
        )
    notes += [n for n in (maker.render_error, maker.fallback_reason) if n]
    checked = [c for c in slots if c.clip is not None]
    context: dict[str, Any] = {
        "kind": kind,
        "directory": str(directory.resolve()),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "version": _version(),
        "groups": _by_task(views),
        "notes": notes,
        "identical": sum(c.check == "identical" for c in checked),
        "differing": sum(c.check == "differs" for c in checked),
        "git_shas": sorted({str(r.meta["git_sha"]) for r in runs if r.meta.get("git_sha")}),
        "versions": runs[0].meta.get("versions"),
    }
    if kind == "benchmark":
        columns, cells, curves = _benchmark_table(runs, notes, maker)
        context.update(columns=columns, cells=cells, curves=curves)
    else:
        context.update(columns=[], cells=[], curves=views[0].figure)
    html = _environment().get_template("report.html.j2").render(**context)
    write_text_atomic(target, html)
    result = ReportResult(
        path=target,
        kind=kind,
        runs=len(runs),
        clips=maker.rendered,
        identical=context["identical"],
        differing=context["differing"],
        max_abs_difference=max((abs(c.difference) for c in checked), default=0.0),
        bytes=len(html.encode("utf-8")),
        notes=notes,
    )
    log.info("wrote %s in %.1f s: %s", target, time.perf_counter() - t0, result)
    return result


def _by_task(views: Sequence[RunView]) -> list[tuple[str, list[RunView]]]:
    groups: dict[str, list[RunView]] = {}
    for v in views:
        groups.setdefault(v.run.name, []).append(v)
    return list(groups.items())


def _version() -> str:
    from icpi.core.rundir import package_versions

    return package_versions(["icpi"]).get("icpi") or "?"
