"""The report of your own task (issue 22, item 2): the task the run recorded is loaded, a
task that cannot render gets a plot of its path, tasks are named by id, and the page's
bands are the bootstrap 95 % intervals of ``curves.png``."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_helpers import Page

from icpi.cli.main import main
from icpi.report import write_report

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def throw_project(tmp_path_factory):
    """A project with the throw task, its dataset, a run and a benchmark, made in it."""
    proj = tmp_path_factory.mktemp("proj")
    shutil.copy(ROOT / "examples" / "throw.py", proj / "throw.py")
    here = os.getcwd()
    os.chdir(proj)
    try:
        assert (
            main(["collect", "--task", "throw.py:ThrowTask", "--out", "data", "--size", "40"]) == 0
        )
        run = ["run", "--task", "throw.py:ThrowTask", "--dataset", "data", "--iterations", "5"]
        assert main([*run, "--method", "lknn20", "--out", "runs/throw"]) == 0
        bench = ["bench", "--tasks", "throw.py:ThrowTask", "--dataset", "data", "--seeds", "0-1"]
        bench += ["--methods", "jacobian,lknn20", "--iterations", "4", "--out", "bench"]
        assert main([*bench, "--no-progress"]) == 0
    finally:
        os.chdir(here)
    return proj


def test_a_run_of_your_own_task_is_reported_from_anywhere(
    throw_project, tmp_path, capsys, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the run recorded an absolute spec: it loads from here too
    out = tmp_path / "run.html"
    assert main(["report", str(throw_project / "runs" / "throw"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 identical" in printed
    html = out.read_text()
    page = Page(html)
    plots = [s for s in page.sources("img") if s.startswith("data:image/svg+xml")]
    assert len(plots) == 1 + 2  # the run's curves, then its first and best rollouts' paths
    svg = base64.b64decode(plots[1].split(",", 1)[1]).decode()
    assert "throw: path" in svg and "goal" in svg and "outcome" in svg
    assert "path of the tracked point (the task does not render clips)" in html
    assert "unknown task" not in html and "cannot be rebuilt" not in html
    assert "angle [rad]" in html and "speed [m/s]" in html  # θ names from the task itself
    assert "<h3>throw</h3>" in html


def test_a_benchmark_of_your_own_task_names_it_by_id(throw_project, tmp_path):
    result = write_report(throw_project / "bench", tmp_path / "b.html", max_videos=4)
    html = result.path.read_text()
    table = Page(html).tables["summary-table"]
    assert {row[0] for row in table[1:]} == {"throw"}
    assert result.identical == 6 and result.clips == 4  # 3 slots per method share θ0
    rate = dict(zip(table[0], next(r for r in table[1:] if r[1] == "jacobian"), strict=True))
    best = [
        json.loads((p / "summary.json").read_text())["best_cost"]
        for p in sorted((throw_project / "bench" / "runs").glob("*/jacobian/seed-*"))
    ]
    assert float(rate["success_rate"]) == np.mean([b < 0.1 for b in best])  # the task's 10 cm


def test_a_task_that_no_longer_loads_leaves_a_page_that_says_why(throw_project, tmp_path):
    run = Path(shutil.copytree(throw_project / "runs" / "throw", tmp_path / "run"))
    config = json.loads((run / "config.json").read_text())
    config["run"]["task"] = str(tmp_path / "gone.py") + ":ThrowTask"
    (run / "config.json").write_text(json.dumps(config))
    result = write_report(run, max_videos=2)
    html = result.path.read_text()
    assert result.clips == 0 and "cannot be rebuilt" in html and "no such file" in html


def test_the_bands_are_the_bootstrap_intervals_of_curves_png(monkeypatch):
    import icpi.manipulation.bench as bench
    from icpi.report.figures import benchmark_curves

    seen = []
    original = bench.bootstrap_ci

    def spy(values, seed=0):
        seen.append(list(values))
        return original(values, seed)

    monkeypatch.setattr(bench, "bootstrap_ci", spy)
    rows = [
        {"task": "t", "method": "m", "seed": s, "iteration": i, "cost": c, "best_so_far": c}
        for s, costs in enumerate([[3.0, 1.0], [2.0, 0.5], [4.0, 0.25]])
        for i, c in enumerate(costs)
    ]
    benchmark_curves(rows, ["t"])
    assert [3.0, 2.0, 4.0] in seen and [1.0, 0.5, 0.25] in seen
