"""Faults that used to slip through (issue 25): each test failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faulty_tasks import GOOD_ROLLOUTS

from icpi.cli.main import main
from icpi.core.files import read_jsonl, write_jsonl


def test_a_run_without_its_config_json_is_checked_before_anything_is_written(tmp_path, capsys):
    # Before: a start with another seed wrote its own config.json and meta.json and only
    # then refused, after which the directory refused its original seed too.
    out = tmp_path / "run"
    argv = ["run", "--task", "slide", "--method", "random", "--iterations", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    config = (out / "config.json").read_text()
    meta = (out / "meta.json").read_text()
    records = (out / "records.jsonl").read_text()
    (out / "config.json").unlink()
    capsys.readouterr()
    assert main([*argv, "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "config.json is missing" in err, err
    assert "seed 0" in err
    assert not (out / "config.json").exists()
    assert (out / "meta.json").read_text() == meta
    # the original settings resume it, and config.json is written back as it was
    assert main([*argv, "--iterations", "4", "--out", str(out)]) == 0
    assert (out / "records.jsonl").read_text().startswith(records)
    assert len((out / "records.jsonl").read_text().splitlines()) == 4
    assert json.loads((out / "config.json").read_text())["run"]["iterations"] == 4
    assert {**json.loads(config), "run": None} == {
        **json.loads((out / "config.json").read_text()),
        "run": None,
    }
    assert (out / "meta.json").read_text() == meta


def test_a_run_without_config_json_replays_its_records_before_writing_it(tmp_path, capsys):
    # Same seed, another method: meta.json agrees, the records do not (θ differ).
    out = tmp_path / "run"
    argv = ["run", "--task", "slide", "--iterations", "3", "--out", str(out)]
    assert main([*argv, "--method", "random"]) == 0
    (out / "config.json").unlink()
    capsys.readouterr()
    assert main([*argv, "--method", "cmaes"]) == 2
    assert "belong to another run" in capsys.readouterr().err
    assert not (out / "config.json").exists()
    assert main([*argv, "--method", "random"]) == 0
    assert json.loads((out / "config.json").read_text())["run"]["method"] == "random"


def _one_line(capsys, verb: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"icpi {verb}: "), err
    return err


def test_the_last_user_mistakes_are_one_line_and_exit_2(tmp_path, capsys):
    # Before: each of these ended in a traceback and exit 1.
    run = ["run", "--task", "slide", "--method", "random", "--iterations", "2"]
    assert main([*run, "--seed", "-1", "--out", str(tmp_path / "r")]) == 2
    assert "seed must be >= 0" in _one_line(capsys, "run")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  seed: -3\n")
    assert main([*run, "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "seed must be >= 0, got -3" in _one_line(capsys, "run")
    cfg.write_bytes(b"run:\n  task: sl\xe9de\n")  # Latin-1, not UTF-8
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "not UTF-8" in _one_line(capsys, "run")
    offline = ["--offline", "--base-url", "http://127.0.0.1:9/v1"]
    assert main(["run", "--task", "slide", *offline, "--out", str(tmp_path / "r")]) == 2
    assert "pass --model" in _one_line(capsys, "run")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out, why in ((a_file, "it is a file"), (a_file / "sub", "Not a directory")):
        assert main([*run, "--out", str(out)]) == 2
        assert why in _one_line(capsys, "run")
        argv = ["bench", "--tasks", "slide", "--methods", "random", "--seeds", "0"]
        assert main([*argv, "--out", str(out)]) == 2
        assert why in _one_line(capsys, "bench")
        assert main(["collect", "--task", "slide", "--size", "3", "--out", str(out)]) == 2
        assert why in _one_line(capsys, "collect")
    assert not (tmp_path / "r").exists()


def test_a_quoted_number_or_a_boolean_is_not_a_number(tmp_path, capsys):
    # Before: TOML iterations = "5" ran 5 iterations and YAML iterations: true ran 1.
    toml = tmp_path / "c.toml"
    toml.write_text('[run]\ntask = "slide"\nmethod = "random"\niterations = "5"\n')
    assert main(["run", "--config", str(toml), "--out", str(tmp_path / "r")]) == 2
    assert "iterations: expected a number, got the text '5'" in _one_line(capsys, "run")
    yaml = tmp_path / "c.yaml"
    yaml.write_text("run:\n  task: slide\n  method: random\n  iterations: true\n")
    assert main(["run", "--config", str(yaml), "--out", str(tmp_path / "r")]) == 2
    assert "iterations: expected a number, got true" in _one_line(capsys, "run")
    yaml.write_text("run:\n  task: slide\n  method: lknn20\n  settings: {k: '10'}\n")
    assert main(["run", "--config", str(yaml), "--out", str(tmp_path / "r")]) == 2
    assert "k: expected a number" in _one_line(capsys, "run")
    yaml.write_text("llm:\n  timeout_s: '5'\n")
    assert main(["run", "--task", "slide", "--config", str(yaml), "--out", str(tmp_path)]) == 2
    assert "timeout_s: expected a number" in _one_line(capsys, "run")
    assert not (tmp_path / "r").exists()
    # a method spec is text by nature: its numbers are converted
    argv = ["bench", "--tasks", "slide", "--methods", "lknn20[k=10]", "--seeds", "0"]
    assert main([*argv, "--iterations", "2", "--no-progress", "--out", str(tmp_path / "b")]) == 0


def test_model_discovery_goes_through_the_outage_clock_before_the_first_rollout(
    tmp_path, capsys, fake
):
    # Before: nothing listening, --outage 5, 40 iterations: exit 0 in 4.9 s with every
    # rollout from the fallback; an HTML page on /models: an AttributeError traceback.
    from icpi.llm.server import free_port
    from icpi.llm.testing import Reply

    argv = ["run", "--task", "slide", "--iterations", "6", "--outage", "1", "--max-retries", "1"]
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    assert main([*argv, "--base-url", nowhere, "--out", str(tmp_path / "a")]) == 3
    err = _one_line(capsys, "run")
    assert "(connection failed); rerun the same command to resume" in err
    assert not (tmp_path / "a" / "records.jsonl").exists()
    fake.set(Reply(body="<html>login</html>", headers={"Content-Type": "text/html"}))
    assert main([*argv, "--base-url", fake.base_url, "--out", str(tmp_path / "b")]) == 3
    assert "(the answer is not JSON)" in _one_line(capsys, "run")
    assert {r["path"] for r in fake.requests} == {"/v1/models"}
    for reply, why in (
        (Reply(body={"object": "list", "data": []}), "lists no models; pass --model"),
        (Reply(status=404, body={"error": {"message": "no"}}), "refused to list its models"),
    ):
        fake.set(reply)
        assert main([*argv, "--base-url", fake.base_url, "--out", str(tmp_path / "c")]) == 2
        assert why in _one_line(capsys, "run")


FAULTY = str(Path(__file__).resolve().parent / "faulty_tasks.py")


@pytest.mark.parametrize(
    ("task", "why"),
    [("NanCostTask", "cost is nan"), ("InfCostTask", "cost is inf"),
     ("ShortErrorTask", "e has shape (1,), the goal (2,)"),
     ("NanOutcomeTask", "outcome is [nan, 0.0]")],
)  # fmt: skip
def test_an_invalid_rollout_stops_a_run_in_one_line_naming_the_task(tmp_path, capsys, task, why):
    # Before: exit 0, "cost": null in records.jsonl (a short e was accepted).
    out = tmp_path / "r"
    argv = ["run", "--task", f"{FAULTY}:{task}", "--method", "random", "--iterations", "5"]
    assert main([*argv, "--out", str(out)]) == 2
    err = _one_line(capsys, "run")
    assert "task analytic returned an invalid rollout for θ [" in err and why in err
    assert len(read_jsonl(out / "records.jsonl")) == GOOD_ROLLOUTS  # the good ones are kept


def test_bench_and_collect_stop_on_an_invalid_rollout_and_write_no_nan(tmp_path, capsys):
    # Before: bench ran every run, then crashed in its summary (no results.parquet);
    # collect wrote a dataset whose e and goal were all NaN, with exit 0.
    task = f"{FAULTY}:NanCostTask"
    argv = ["bench", "--tasks", task, "--methods", "random", "--seeds", "0", "--iterations", "4"]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "b")]) == 2
    assert "cost is nan" in _one_line(capsys, "bench")
    assert main(["collect", "--task", task, "--size", "10", "--out", str(tmp_path / "d")]) == 2
    assert "cost is nan" in _one_line(capsys, "collect")
    assert not (tmp_path / "d" / "examples.parquet").exists()


@pytest.mark.parametrize(
    ("task", "why"),
    [("InvertedBoundsTask", "'y' needs finite bounds with low < high, got low 1.0 and high 0.0"),
     ("NanBoundsTask", "'y' needs finite bounds with low < high, got low nan")],
)  # fmt: skip
def test_a_theta_spec_without_a_valid_box_is_refused_in_one_line(tmp_path, capsys, task, why):
    # Before: a traceback later, or θ silently pinned to a bound.
    argv = ["run", "--task", f"{FAULTY}:{task}", "--method", "random", "--iterations", "2"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = _one_line(capsys, "run")
    assert "cannot load task" in err and why in err


def test_the_bench_summary_leaves_out_a_run_with_a_nan_cost(tmp_path, caplog):
    # A run written before rollouts were checked: the summary crashed on it (TypeError).
    from icpi.manipulation.bench import Job, collect_rows
    from icpi.manipulation.config import parse_method_spec

    jobs = []
    for seed in (0, 1):
        out = tmp_path / f"seed-{seed}"
        assert main(["run", "--task", "slide", "--method", "random", "--iterations", "2",
                     "--seed", str(seed), "--out", str(out)]) == 0  # fmt: skip
        jobs.append(Job("slide", parse_method_spec("random"), seed, 2, out, {}, {}))
    records = read_jsonl(tmp_path / "seed-1" / "records.jsonl")
    records[1]["cost"] = None
    write_jsonl(tmp_path / "seed-1" / "records.jsonl", records)
    rows = collect_rows(jobs)
    assert {r["seed"] for r in rows} == {0} and len(rows) == 2
    assert "seed-1: a record has the cost None; the run is left out" in caplog.text
