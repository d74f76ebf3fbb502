"""The model-quality preset: methods against the calibration proposer at known qualities."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icpi.manipulation.calibration import OptimumStore
from icpi.manipulation.model_quality import REFERENCE, run_model_quality

ICPI = str(Path(sys.executable).parent / "icpi")


def test_the_preset_pairs_every_proposer_with_the_model_free_reference(tmp_path):
    store = OptimumStore(tmp_path / "optima")
    out = tmp_path / "mq"
    report = run_model_quality(
        ["ball-roll-gc"], [102], 4, out, proposers=["sigma0", "zero"], store=store,
        progress=False, workers=1,
    )  # fmt: skip
    rows = {(r["proposer"], r["method"]): r for r in report["rows"]}
    assert set(rows) == {
        ("none", REFERENCE),
        ("sigma0", "icpi"),
        ("sigma0", "icpi+"),
        ("sigma0", "icpi+[sensitivity=false]"),
        ("sigma0", "icpi+[zoom=false;sensitivity=false]"),
        ("sigma0", "icpi+[theta_steps=100;e_unit=0.01;zoom=false;sensitivity=false]"),
        ("sigma0", "icpi+[judge=off]"),
        ("zero", "icpi"),
        ("zero", "icpi+"),
    }
    perfect, zero = rows[("sigma0", "icpi+")], rows[("zero", "icpi+")]
    assert perfect["model share"] > 0 and perfect["best@5"] < 0.005
    # a proposer that never corrects anything is never rolled out: icpi+ is its reference
    assert zero["model share"] == 0 and zero["wtl final"] == (0, 1, 0)
    # whose rollouts improved on the best: a perfect model's do; zero's are never rolled
    # out, and the numeric sources' share is the reference's
    assert perfect["model improved"] > 0.5
    assert zero["model improved"] is None
    assert zero["numeric improved"] == rows[("none", REFERENCE)]["numeric improved"]
    assert rows[("sigma0", "icpi")]["numeric improved"] is None  # icpi: the model alone
    table = (out / "model-quality.md").read_text()
    assert "### ball-roll-gc" in table and "not language models" in table
    assert "| improved: model (numeric) |" in table
    assert (out / "sigma0" / "summary.md").exists() and store.path("ball-roll-gc", 102).exists()
    # resumable: a second call reruns nothing and gives the same table
    again = run_model_quality(
        ["ball-roll-gc"], [102], 4, out, proposers=["sigma0", "zero"], store=store,
        progress=False, workers=1,
    )  # fmt: skip
    assert again["table"] == report["table"]
    # the first-decision script reads the same runs: σ = 0 takes rollout 1 with a claim
    # the outcome model hardly contradicts; zero never takes it
    script = Path(__file__).parents[2] / "benchmarks" / "first_decision.py"
    lines = {}
    for proposer in ("sigma0", "zero"):
        proc = subprocess.run(
            [sys.executable, str(script), str(out / proposer), "--methods", "icpi+",
             "--reference-dir", str(out / "model-off"), "--tasks", "ball-roll-gc",
             "--seeds", "102-102", "--iterations", "4"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines[proposer] = proc.stderr.splitlines()[0]
    assert "the model won rollout 1 in 1, 0 of them worse" in lines["sigma0"]
    assert float(lines["sigma0"].rsplit("102: ", 1)[1]) < 1.0
    assert "the model won rollout 1 in 0" in lines["zero"]


def test_cli_preset_runs_the_proposers_it_is_given_and_no_others(tmp_path):
    out = tmp_path / "mq"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # θ* searched afresh, kept there
    proc = subprocess.run(
        [ICPI, "bench", "--preset", "model-quality", "--proposers", "sigma0,zero", "--tasks",
         "ball-roll-gc", "--seeds", "102", "--iterations", "3", "--out", str(out),
         "--no-progress"],
        capture_output=True, text=True, timeout=600, env={**os.environ, **env},
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    # the table's first column: its header, the reference, and the two proposers alone
    assert {line.split(" | ")[0][2:] for line in rows} == {"proposer", "none", "sigma0", "zero"}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["model-off", "sigma0", "zero"]
    assert (tmp_path / "cache" / "icpi" / "calibration" / "ball-roll-gc-seed102.json").exists()


@pytest.mark.slow
def test_cli_preset_runs_every_proposer_and_prints_the_table(tmp_path):
    pytest.importorskip("llama_cpp")
    out = tmp_path / "mq"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(
        [ICPI, "bench", "--preset", "model-quality", "--tasks", "ball-roll-gc", "--seeds",
         "102", "--iterations", "2", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=900, env={**os.environ, **env},
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SmolLM2-135M" in proc.stdout and "calibration-*" in proc.stdout
    assert (out / "smollm2" / "summary.md").exists()


def test_noise_draws_are_run_apart_and_pooled_in_each_row(tmp_path):
    store = OptimumStore(tmp_path / "optima")
    out = tmp_path / "mq"
    report = run_model_quality(
        ["ball-roll-gc"], [102], 4, out, proposers=["sigma10", "zero"], store=store,
        progress=False, workers=1, draws=2,
    )  # fmt: skip
    rows = {(r["proposer"], r["method"]): r for r in report["rows"]}
    noisy, zero = rows[("sigma10", "icpi")], rows[("zero", "icpi")]
    # one instance, two draws of the noise: two runs, each paired with the same reference
    assert (noisy["instances"], noisy["draws"], sum(noisy["wtl final"])) == (1, 2, 2)
    assert (zero["draws"], sum(zero["wtl final"])) == (1, 1)  # nothing to draw: one run
    assert not (out / "zero-draw1").exists()
    first, second = (
        json.loads((out / f / "runs/ball-roll-gc/icpi/seed-102/records.jsonl")
                   .read_text().splitlines()[1])["theta"]
        for f in ("sigma10", "sigma10-draw1")
    )  # fmt: skip
    assert first != second  # another draw answered the same first prompt otherwise
    assert "2 noise draws per instance" in report["table"]
    # the paired ablation script pools the draws as well: one pair per (instance, draw)
    script = Path(__file__).parents[2] / "benchmarks" / "paired_ablation.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(out), "--proposers", "sigma10", "--draws", "2",
         "--tasks", "ball-roll-gc", "--seeds", "102-102", "--iterations", "4"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sigma10 ball-roll-gc (2):" in proc.stderr


def test_the_ratio_interval_is_paired_and_survives_a_zero_reference():
    from icpi.manipulation.bench import ratio_ci

    same = [0.002, 0.004, 0.001, 0.003]
    assert ratio_ci(same, same) == (1.0, 1.0)  # identical runs: exactly 1
    # twice the reference on every instance: exactly 2, however different the instances
    assert ratio_ci([2 * x for x in same], same) == pytest.approx((2.0, 2.0))
    # one instance decides the mean: the interval holds 1 and the point ratio
    low, high = ratio_ci([0.001, 0.001, 0.001, 0.010], [0.001, 0.001, 0.001, 0.001])
    assert low <= 1.0 and high >= 3.25
    low, high = ratio_ci([0.0, 0.0, 0.001], [0.0, 0.0, 0.0])  # references at 0.00 mm
    assert low == 1.0 and high == float("inf")
    assert ratio_ci([0.001], [0.002]) is None  # one instance: no interval


def test_the_table_shows_each_ratio_with_its_interval_and_whose_rollouts_improved():
    from icpi.manipulation.model_quality import _row, quality_table

    def run(costs, sources):
        best, rows = math.inf, []
        for i, (c, src) in enumerate(zip(costs, sources, strict=True)):
            best = min(best, c)
            rows.append({"iteration": i, "cost": c, "best_so_far": best, "source": src,
                         "model_calls": int(src != "initial")})  # fmt: skip
        return rows

    numeric = ["initial", "lknn20", "jacobian", "lknn20", "lknn20", "best"]
    asked = ["initial", "model", "lknn20", "model", "jacobian", "best"]
    ref = {s: run([0.3, 0.1, 0.2, 0.05, 0.04, 0.04], numeric) for s in (1, 2, 3)}
    mine = {(s, 0): run([0.3, 0.02, 0.01, 0.03, 0.005, 0.005], asked) for s in (1, 2, 3)}
    rows = [_row("t", "none", REFERENCE, {(s, 0): r for s, r in ref.items()}, ref)]
    rows.append(_row("t", "sigma0", "icpi+", mine, ref))
    assert rows[1]["model improved"] == 0.5  # 0.02 beat 0.3; 0.03 did not beat 0.02
    assert rows[1]["numeric improved"] == 1.0  # 0.01 and 0.005 did
    assert rows[0]["numeric improved"] == 0.75 and rows[0]["model improved"] is None
    table = quality_table(rows)
    # after 5: 0.005 against 0.04 on all three: 0.125x exactly, so is its interval
    assert "| 5.00 (0.12× [0.12, 0.12]; 3/0/0) |" in table
    line = next(x for x in table.splitlines() if x.startswith("| sigma0 | icpi+ |"))
    assert line.endswith("| 50% (100%) |")
