"""Baselines behind ask/tell, and the benchmark harness."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from icpi.envs import make_task
from icpi.errors import ConfigError
from icpi.manipulation.bench import Job, parse_seeds, run_benchmark, split_list
from icpi.manipulation.config import RunConfig, load_run_config, parse_method_spec
from icpi.manipulation.methods import load_methods
from icpi.manipulation.methods.icpi import ICPISettings
from icpi.manipulation.run import run_method

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from fake_openai import FakeOpenAI, Reply, completion_body

ICPI = str(Path(sys.executable).parent / "icpi")
BASELINES = [name for name, cls in load_methods().items() if not cls.uses_model]


def records(path):
    return [json.loads(x) for x in open(path / "records.jsonl")]


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_starts_at_theta0_and_stays_in_the_box(method, tmp_path):
    task = make_task("slide-gc")
    s = run_method(RunConfig(task="slide-gc", method=method, seed=0, iterations=8), tmp_path)
    recs = records(tmp_path)
    assert s["iterations"] == 8 and [r["iteration"] for r in recs] == list(range(8))
    centre = 0.5 * (task.theta_spec.low_array + task.theta_spec.high_array)
    np.testing.assert_allclose(recs[0]["theta"], centre)
    for r in recs:
        theta = np.asarray(r["theta"])
        assert np.all(theta >= task.theta_spec.low_array)
        assert np.all(theta <= task.theta_spec.high_array)
        assert not r["clipped"]
    assert recs[0]["source"] == "initial"


@pytest.mark.parametrize("method", BASELINES)
def test_killed_baseline_run_resumes_exactly(method, tmp_path):
    full = run_method(
        RunConfig(task="ball-roll-gc", method=method, seed=2, iterations=10), tmp_path / "a"
    )
    cfg = RunConfig(task="ball-roll-gc", method=method, seed=2, iterations=10)
    part = tmp_path / "b"
    run_method(RunConfig(task="ball-roll-gc", method=method, seed=2, iterations=10), part)
    lines = (part / "records.jsonl").read_text().splitlines()
    # as if killed after 4 rollouts, in the middle of writing the fifth line
    (part / "records.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])
    (part / "summary.json").unlink()
    resumed = run_method(cfg, part)
    assert records(part) == records(tmp_path / "a")
    assert resumed["final_cost"] == full["final_cost"]


@pytest.mark.parametrize("method", BASELINES)
def test_final_best_reruns_the_best_theta_last_for_every_method(method, tmp_path):
    cfg = load_run_config(
        {"task": "ball-roll-gc", "method": method, "seed": 2, "iterations": 6},
        {"settings": {"final_best": "true"}},
    )
    summary = run_method(cfg, tmp_path)
    recs = records(tmp_path)
    best = min(recs[:-1], key=lambda r: r["cost"])
    assert recs[-1]["source"] == "best" and recs[-1]["theta"] == best["theta"]
    assert summary["final_cost"] == summary["best_cost"]
    # killed once the re-run was written: the resume replays it and reruns nothing
    (tmp_path / "summary.json").unlink()
    assert run_method(cfg, tmp_path)["final_cost"] == summary["final_cost"]
    assert records(tmp_path) == recs


def test_summary_pairs_final_and_best_so_far_against_the_reference():
    from icpi.manipulation.bench import summarise

    def rows(method, seed, costs):
        best = np.minimum.accumulate(costs)
        return [
            {"task": "t", "method": method, "seed": seed, "iteration": i, "cost": c,
             "best_so_far": b, "source": "x", "model_calls": 0}
            for i, (c, b) in enumerate(zip(costs, best, strict=True))
        ]  # fmt: skip

    data = rows("lknn20", 0, [0.1, 0.01, 0.05]) + rows("lknn20", 1, [0.1, 0.02, 0.02])
    data += rows("m", 0, [0.1, 0.03, 0.03]) + rows("m", 1, [0.1, 0.001, 0.02])
    m = next(r for r in summarise(data) if r["method"] == "m")
    # final: 0.03 < 0.05 (win), 0.02 = 0.02 (tie); best: 0.03 > 0.01 (loss), 0.001 < 0.02 (win)
    assert (m["vs_ref_wins"], m["vs_ref_ties"], m["vs_ref_losses"]) == (1, 1, 0)
    assert (m["vs_ref_best_wins"], m["vs_ref_best_ties"], m["vs_ref_best_losses"]) == (1, 0, 1)
    assert m["vs_ref_best_diff_mean"] == pytest.approx(((0.03 - 0.01) + (0.001 - 0.02)) / 2)


@pytest.mark.slow
def test_every_baseline_beats_random_shooting_on_slide(tmp_path):
    best = {}
    for method in BASELINES:
        costs = [
            run_method(
                RunConfig(task="slide", method=method, seed=seed, iterations=20),
                tmp_path / method / str(seed),
            )["best_cost"]
            for seed in range(4)
        ]
        best[method] = float(np.mean(costs))
    for method in ("bo", "knn5", "lknn20", "cmaes"):
        assert best[method] < best["random"], best


def test_method_specs_and_seed_lists():
    assert split_list("icpi[k=5;feature=raw],random") == ["icpi[k=5;feature=raw]", "random"]
    spec = parse_method_spec("icpi[k=5;feature=raw;dataset_size=100;model=m2]")
    assert spec.method == "icpi" and spec.settings == {"k": "5", "feature": "raw"}
    assert spec.run == {"dataset_size": "100"} and spec.llm == {"model": "m2"}
    assert spec.uses_model and not parse_method_spec("cmaes").uses_model
    assert parse_seeds("0-3,7,2") == [0, 1, 2, 3, 7]
    with pytest.raises(ConfigError, match="unknown method"):
        parse_method_spec("gradient-descent")
    with pytest.raises(ConfigError, match="bad setting"):
        parse_method_spec("icpi[temperature]")
    with pytest.raises(ConfigError, match="bad seed"):
        parse_seeds("a-b")
    with pytest.raises(ConfigError, match="no seeds"):
        parse_seeds("")


def test_benchmark_writes_reports_and_resumes_without_rerunning(tmp_path):
    out = tmp_path / "bench"
    run_benchmark(["slide", "ball-roll-gc"], ["random", "knn5"], [0, 1], 4, out, progress=False)
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 2 * 2 * 2 * 4
    assert {"task", "method", "seed", "iteration", "cost", "best_so_far"} <= set(rows[0])
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert len(summary) == 4 and all(int(r["instances"]) == 2 for r in summary)
    table = (out / "summary.md").read_text()
    assert "| random |" in table and "| knn5 |" in table and "ball-roll-gc" in table
    assert (out / "curves.png").stat().st_size > 10_000
    # a killed benchmark: one run lost its last rollouts, the others are finished
    broken = out / "runs" / "slide" / "knn5" / "seed-1"
    lines = (broken / "records.jsonl").read_text().splitlines()
    (broken / "records.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (broken / "summary.json").unlink()
    finished = out / "runs" / "slide" / "random" / "seed-0" / "records.jsonl"
    stamp = finished.stat().st_mtime_ns
    run_benchmark(["slide", "ball-roll-gc"], ["random", "knn5"], [0, 1], 4, out, progress=False)
    assert finished.stat().st_mtime_ns == stamp
    assert len(records(broken)) == 4
    assert len(pq.read_table(out / "results.parquet")) == 32


def test_bench_cli_smoke_with_icpi_through_an_openai_endpoint(tmp_path):
    fake = FakeOpenAI()
    fake.set(Reply(body=completion_body(" 2 -1 0", prompt_tokens=400)))
    try:
        import subprocess

        proc = subprocess.run(
            [ICPI, "bench", "--tasks", "slide", "--methods", "icpi,random,icpi[k=5]",
             "--seeds", "0-1", "--iterations", "3", "--out", str(tmp_path / "b"),
             "--base-url", fake.base_url, "--model", "fake", "--no-progress",
             "--cache", str(tmp_path / "cache.sqlite3")],
            capture_output=True, text=True, timeout=300, env={**os.environ},
        )  # fmt: skip
    finally:
        fake.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| icpi |" in proc.stdout and "| icpi[k=5] |" in proc.stdout
    assert "Wall time" in proc.stdout
    k5 = tmp_path / "b" / "runs" / "slide" / "icpi_k=5" / "seed-0" / "config.json"
    assert json.loads(k5.read_text())["run"]["settings"]["k"] == 5


def test_bench_cli_rejects_bad_input(tmp_path):
    import subprocess

    proc = subprocess.run(
        [ICPI, "bench", "--tasks", "slide", "--methods", "nope", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown method" in proc.stderr


def test_bench_cli_pairs_every_method_with_the_reference_it_is_given(tmp_path):
    import subprocess

    def bench(*extra):
        return subprocess.run(
            [ICPI, "bench", "--tasks", "slide", "--methods", "random,knn5", "--seeds", "0-2",
             "--iterations", "3", "--out", str(tmp_path / "b"), "--no-progress", *extra],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    proc = bench("--reference", "knn5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "against knn5 on the same instances" in proc.stdout
    row = next(r for r in csv.DictReader(open(tmp_path / "b" / "summary.csv")))
    assert row["method"] == "random"
    assert int(row["vs_ref_wins"]) + int(row["vs_ref_ties"]) + int(row["vs_ref_losses"]) == 3
    assert row["vs_ref_diff_mean"] != ""
    refused = bench("--reference", "bo")
    assert refused.returncode == 2 and "reference 'bo' is not among the methods" in refused.stderr


def test_settings_are_typed_from_specs_flags_and_files_alike(tmp_path):
    spec = parse_method_spec("icpi[k=7;feature=raw;online_relabel=true]")
    job = Job("slide", spec, 3, 5, tmp_path, run={}, llm={})
    cfg = job.config()
    assert cfg.settings == ICPISettings(k=7, feature="raw", online_relabel=True)
    assert (cfg.task, cfg.seed, cfg.iterations) == ("slide", 3, 5)
    small = Job("slide", parse_method_spec("icpi[dataset_size=50]"), 0, 5, tmp_path, {}, {})
    assert small.config().dataset_size == 50
    # the same loader as flags and config files: one coercion, one set of errors
    same = load_run_config({"task": "slide", "seed": "3", "iterations": 5}, spec.layer())
    assert same == cfg
    with pytest.raises(ConfigError, match="unknown setting 'xi'"):
        load_run_config({"task": "slide", "method": "lknn20", "settings": {"xi": 1}})
    with pytest.raises(ConfigError, match="k must be >= 1"):
        load_run_config({"task": "slide", "settings": {"k": 0}})
    with pytest.raises(ConfigError, match="iterations"):
        load_run_config({"task": "slide", "iterations": 0})
    llm = Job("slide", parse_method_spec("icpi[temperature=0.3]"), 0, 5, tmp_path, {}, {})
    assert llm.llm_config().sampling.temperature == 0.3
    assert llm.llm_config().sampling.max_tokens == 24  # the method's default
    assert Job("slide", parse_method_spec("lknn20"), 0, 5, tmp_path, {}, {}).llm_config() is None


def test_readme_method_table_is_the_registry():
    from icpi.manipulation.methods import method_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert method_table() in readme


@pytest.mark.slow
def test_ray_backend_gives_the_local_backends_results(tmp_path):
    pytest.importorskip("ray")
    fake = FakeOpenAI()
    fake.set(Reply(body=completion_body(" 2 -1 0", prompt_tokens=400)))
    llm = {"base_url": fake.base_url, "model": "fake", "cache_path": str(tmp_path / "c.sqlite3")}
    args = (["slide", "ball-roll-gc"], ["random", "lknn20", "icpi"], [0, 1], 4)
    try:
        local = run_benchmark(*args, tmp_path / "local", llm=llm, progress=False)
        ray_ = run_benchmark(
            *args, tmp_path / "ray", llm=llm, progress=False, backend="ray", workers=2
        )
    finally:
        fake.close()

    def rows(out):
        keep = ("task", "method", "seed", "iteration", "cost", "theta", "source")
        table = pq.read_table(out / "results.parquet").to_pylist()
        return sorted(tuple(json.dumps(r[k]) for k in keep) for r in table)

    assert rows(tmp_path / "local") == rows(tmp_path / "ray")
    assert len(rows(tmp_path / "ray")) == 2 * 3 * 2 * 4
    untimed = [[{k: v for k, v in r.items() if not k.endswith("_s_per_iteration")}
                for r in rep["summary"]] for rep in (local, ray_)]  # fmt: skip
    assert untimed[0] == untimed[1]
