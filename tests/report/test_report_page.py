"""The report page of a tiny real run and benchmark: contents, tolerance, errors, CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from report_helpers import HOSTILE, ITERATIONS, METHODS, SEEDS, TASKS, Page

import icpi.manipulation.bench as bench
from icpi.core.files import read_jsonl, write_jsonl
from icpi.report import ReportError, write_report
from icpi.report import media as media_mod
from icpi.report.page import compact_table, fmt

pytest_plugins = ["report_fixtures"]  # the fixtures bench_dir, bench_copy, run_copy


def decode(uri: str) -> bytes:
    head, _, payload = uri.partition(",")
    assert head.endswith(";base64"), head
    return base64.b64decode(payload)


def read_mp4(uri: str, tmp_path) -> np.ndarray:
    path = tmp_path / "clip.mp4"
    path.write_bytes(decode(uri))
    return iio.imread(path, plugin="FFMPEG", index=None)


def _results(bench_dir):
    import pyarrow.parquet as pq

    return pq.read_table(bench_dir / "results.parquet").to_pylist()


# ---------------------------------------------------------------- benchmark page
def test_benchmark_page_has_every_summary_column_curves_runs_and_checked_clips(
    bench_copy, tmp_path
):
    out = tmp_path / "page.html"
    result = write_report(bench_copy, out, max_videos=8)
    html = out.read_text()
    page = Page(html)
    assert result.kind == "benchmark" and result.runs == len(TASKS) * len(METHODS) * len(SEEDS)

    # The table is bench.summarise of the benchmark's rows, every column, every cell: an
    # interval beside its mean, wins/ties/losses in one cell.
    summary = bench.summarise(_results(bench_copy))
    table = page.tables["summary-table"]
    assert (table[0], table[1:]) == compact_table(summary)
    assert "final_cost_mean [95 % CI]" in table[0] and "vs_ref W/T/L" in table[0]
    row = dict(zip(table[0], table[1], strict=True))
    s = summary[0]
    assert row["final_cost_mean [95 % CI]"] == (
        f"{fmt(s['final_cost_mean'])} [{fmt(s['final_ci_low'])}, {fmt(s['final_ci_high'])}]"
    )
    assert len(table) - 1 == len(TASKS) * len(METHODS)

    # Curves: an SVG with a panel per task and a line per method.
    (curves,) = [a["src"] for t, a in page.attrs if a.get("id") == "curves-figure"]
    svg = decode(curves).decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for label in (*TASKS, *METHODS, "best so far"):
        assert label in svg

    # One card per run, each with its θ/e table (one row per rollout).
    cards = page.by_class("article", "card")
    assert len(cards) == result.runs
    assert html.count('<details class="iterations">') == result.runs
    assert "push_angle [rad]" in html and "strike_angle [rad]" in html

    # Prompts and answers of the model runs only; the hostile completion stays text.
    assert html.count('<details class="prompts">') == len(TASKS) * len(SEEDS)
    assert "Parameters (percent of range)" in html
    assert HOSTILE not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html

    # Eight distinct rollouts rendered (the limit): first those of each task × method's
    # first seed (per task, one first rollout shared by the methods + a best each).
    videos = page.by_class("video", "clip")
    assert result.clips == 8 and len({v["src"] for v in videos}) == 8
    seed0 = [c for c in html.split('<article class="card"')[1:] if "· seed 0</h4>" in c]
    assert len(seed0) == len(TASKS) * len(METHODS) and all("<video" in c for c in seed0)
    # Each clip decodes to 320x240 frames; the re-simulated cost equals the recorded one.
    frames = read_mp4(videos[0]["src"], tmp_path)
    assert frames.shape[1:] == (240, 320, 3) and frames.std() > 5
    assert all(v["poster"].startswith("data:image/jpeg;base64,") for v in videos)
    assert result.identical == len(videos) and result.differing == 0
    assert html.count(">identical</span>") == len(videos)
    assert "raise --max-videos to see it" in html
    assert any("--max-videos 8" in n for n in result.notes)

    # Self-contained: every source is inline, the policy forbids fetches.
    assert all(s.startswith("data:") for s in page.sources("img") + page.sources("video"))
    assert "default-src 'none'" in html and "http://" not in html and "https://" not in html
    assert result.bytes == len(html.encode())


def test_every_summary_column_appears_even_new_ones(bench_copy, tmp_path, monkeypatch):
    original = bench.summarise

    def with_more_columns(rows, **kwargs):
        more = {"wins_vs_lknn20": "1/0/1", "regret": 0.5}
        return [{**s, **more} for s in original(rows, **kwargs)]

    monkeypatch.setattr(bench, "summarise", with_more_columns)
    out = tmp_path / "page.html"
    write_report(bench_copy, out, max_videos=0)
    table = Page(out.read_text()).tables["summary-table"]
    assert table[0][-2:] == ["wins_vs_lknn20", "regret"]
    assert {row[-2] for row in table[1:]} == {"1/0/1"} and {row[-1] for row in table[1:]} == {"0.5"}


# ---------------------------------------------------------------- run page
def test_run_page_shows_its_summary_curves_first_and_best_rollouts(run_copy, tmp_path):
    result = write_report(run_copy, max_videos=5)
    out = run_copy / "report.html"
    assert result.path == out and result.kind == "run"
    html = out.read_text()
    page = Page(html)
    summary = json.loads((run_copy / "summary.json").read_text())
    table = page.tables["summary-table"]
    assert [row[0] for row in table] == list(summary)
    assert dict(table)["final_cost"] == fmt(summary["final_cost"])

    records = read_jsonl(run_copy / "records.jsonl")
    costs = [r["cost"] for r in records]
    best = int(np.argmin(costs))
    assert best != 0  # the fixture run improves on θ0
    assert "first rollout · iteration 0" in html and f"best rollout · iteration {best}" in html
    assert result.clips == 2 and result.identical == 2
    # Both costs are shown; full precision sits in the tooltip.
    assert f"{costs[best]!r} vs {costs[best]!r}" in html
    (curves,) = [a["src"] for t, a in page.attrs if a.get("id") == "curves-figure"]
    assert "relative error" in decode(curves).decode()
    model_iterations = ITERATIONS - 1
    assert html.count('<details class="prompt">') == model_iterations


def test_a_differing_resimulated_cost_is_shown_not_hidden(run_copy):
    records = read_jsonl(run_copy / "records.jsonl")
    records[0]["cost"] += 1e-3
    write_jsonl(run_copy / "records.jsonl", records)
    result = write_report(run_copy, max_videos=1)
    html = result.path.read_text()
    assert result.differing == 1 and abs(result.max_abs_difference - 1e-3) < 1e-12
    assert "differs by -0.001 m" in html


def test_old_run_directories_still_render(run_copy, tmp_path):
    # Records with only the oldest keys, no summary, meta or attempts, a config without
    # θ names: the page still shows the figures derived from the records and the clips.
    records = [
        {k: r[k] for k in ("iteration", "theta", "cost")}
        for r in read_jsonl(run_copy / "records.jsonl")
    ]
    write_jsonl(run_copy / "records.jsonl", records)
    for name in ("summary.json", "meta.json", "attempts.jsonl", "llm_calls.jsonl"):
        (run_copy / name).unlink(missing_ok=True)
    config = json.loads((run_copy / "config.json").read_text())
    del config["theta_names"], config["theta_units"]
    (run_copy / "config.json").write_text(json.dumps(config))
    result = write_report(run_copy, max_videos=1)
    html = result.path.read_text()
    assert "Derived from records.jsonl" in html
    assert "push_angle [rad]" in html  # names and units from the task itself
    assert result.identical == 1

    # Without config.json: no instance, so no clip, and the page says why.
    (run_copy / "config.json").unlink()
    records = [{"cost": r["cost"]} for r in records]
    write_jsonl(run_copy / "records.jsonl", records)
    result = write_report(run_copy, tmp_path / "bare.html", max_videos=5)
    html = result.path.read_text()
    assert result.clips == 0 and "not re-simulated: the run records no task" in html
    assert len(Page(html).tables["summary-table"]) == 7


def test_an_old_benchmark_still_renders_its_table(bench_copy, tmp_path):
    run = bench_copy / "runs" / "slide" / "random" / "seed-0"
    records = [{"cost": r["cost"]} for r in read_jsonl(run / "records.jsonl")]
    write_jsonl(run / "records.jsonl", records)
    (run / "summary.json").unlink()
    result = write_report(bench_copy, tmp_path / "old.html", max_videos=0)
    table = Page(result.path.read_text()).tables["summary-table"]
    assert len(table) - 1 == len(TASKS) * len(METHODS)
    assert any("too old for bench.collect_rows" in n for n in result.notes)


def test_gif_when_asked_or_when_mp4_cannot_be_written(run_copy, tmp_path, monkeypatch):
    result = write_report(run_copy, tmp_path / "gif.html", max_videos=1, video_format="gif")
    (img,) = [s for s in Page(result.path.read_text()).sources("img") if "image/gif" in s]
    frames = iio.imread(decode(img), extension=".gif", index=None)
    assert frames.shape[1:3] == (240, 320) and len(frames) > 3  # still frames merge

    def no_ffmpeg(frames, fps):
        raise ImportError("No module named 'imageio_ffmpeg'")

    monkeypatch.setattr(media_mod, "encode_mp4", no_ffmpeg)
    result = write_report(run_copy, tmp_path / "auto.html", max_videos=1)
    html = result.path.read_text()
    assert "data:image/gif;base64," in html and "<video" not in html
    assert any("MP4 could not be written" in n for n in result.notes)

    with pytest.raises(ReportError, match=r"cannot write MP4.*--video-format gif"):
        write_report(run_copy, tmp_path / "mp4.html", max_videos=1, video_format="mp4")
    assert not (tmp_path / "mp4.html").exists()


def test_a_renderer_that_fails_leaves_a_page_that_says_so(run_copy, monkeypatch):
    import icpi.envs.render as render

    def no_gl(*args, **kwargs):
        raise RuntimeError("an OpenGL platform library has not been loaded")

    monkeypatch.setattr(render, "render_rollout", no_gl)
    result = write_report(run_copy, max_videos=5)
    html = result.path.read_text()
    assert result.clips == 0 and "<video" not in html
    assert any("rendering failed (RuntimeError" in n and "MUJOCO_GL=egl" in n for n in result.notes)
    assert html.count("not re-simulated: rendering failed") == 2


def test_directories_that_cannot_be_reported_give_clear_errors(tmp_path, run_copy):
    with pytest.raises(ReportError, match="is not a directory"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="neither a run directory"):
        write_report(tmp_path / "empty")
    lang = tmp_path / "lang"
    lang.mkdir()
    write_jsonl(lang / "records.jsonl", [{"problem": "p0", "round": 0, "reward": 1.0}])
    with pytest.raises(ReportError, match=r"has no cost: .* not language-task runs"):
        write_report(lang)
    nan = tmp_path / "nan"
    nan.mkdir()
    write_jsonl(nan / "records.jsonl", [{"iteration": 0, "theta": [0, 0, 0], "cost": None}])
    with pytest.raises(ReportError, match=r"line 1 has a cost that is not a finite number"):
        write_report(nan)
    (run_copy / "config.json").write_text("{broken")
    with pytest.raises(ReportError, match=r"config\.json is not valid JSON"):
        write_report(run_copy)
    with pytest.raises(ReportError, match="--max-videos must be 0 or more"):
        write_report(run_copy, max_videos=-1)
    assert not list(tmp_path.rglob("report.html"))


# ---------------------------------------------------------------- CLI
def test_cli_writes_the_page_and_prints_where(bench_copy, tmp_path):
    out = tmp_path / "r" / "page.html"
    proc = subprocess.run(
        [sys.executable, "-m", "icpi.cli.main", "--log-level", "WARNING", "report",
         str(bench_copy), "--out", str(out), "--max-videos", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"Report: {out.resolve()}" in proc.stdout
    assert "1 clips" in proc.stdout and "identical" in proc.stdout
    assert "<video" in out.read_text()


def test_cli_rejects_a_directory_that_is_not_a_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "icpi.cli.main", "report", str(tmp_path), "--max-videos", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "neither a run directory" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "report.html").exists()


def test_a_bad_run_is_left_out_of_the_benchmark_page_and_named_on_it(bench_copy, tmp_path):
    """Issue 25: one bad run refused the whole benchmark."""
    runs = bench_copy / "runs"
    nan = runs / "slide" / "random" / "seed-0"
    lines = (nan / "records.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"cost": ', '"cost": NaN, "was": ', 1)
    (nan / "records.jsonl").write_text("\n".join(lines) + "\n")
    (runs / "slide" / "lknn20" / "seed-1" / "records.jsonl").write_text("")
    (runs / "ball-roll-gc" / "random" / "seed-1" / "config.json").write_bytes(b"\xff\xfe{")
    result = write_report(bench_copy, tmp_path / "page.html", max_videos=0)
    assert result.runs == len(TASKS) * len(METHODS) * len(SEEDS) - 3
    html = result.path.read_text()
    for bad, why in (
        ("slide/random/seed-0", "line 2 has a cost that is not a finite number (nan)"),
        ("slide/lknn20/seed-1", "holds no rollouts"),
        ("ball-roll-gc/random/seed-1", "config.json is unreadable"),
    ):
        (note,) = [n for n in result.notes if n.startswith(f"runs/{bad} is left out")]
        assert why in note and f"runs/{bad} is left out" in html and why in html
    table = Page(html).tables["summary-table"]
    assert len(table) - 1 == len(TASKS) * len(METHODS)  # every cell keeps its other seed


@pytest.mark.parametrize(
    ("line", "why"),
    [("[1, 2]", "line 2 is not a JSON object (list)"),
     ('{"iteration": "one", "cost": 0.1}', "line 2 has an iteration that is not a whole")],
)  # fmt: skip
def test_a_records_line_of_the_wrong_shape_is_one_line(run_copy, line, why):
    """Issue 25: these were an AttributeError and a TypeError traceback."""
    records = run_copy / "records.jsonl"
    first = records.read_text().splitlines()[0]
    records.write_text(f"{first}\n{line}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "icpi.cli.main", "report", str(run_copy), "--max-videos", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert why in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
