"""Faults that used to slip through (issue 25): each test failed before its fix."""

from __future__ import annotations

import json

from icpi.cli.main import main


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

