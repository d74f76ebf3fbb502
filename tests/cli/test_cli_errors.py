"""One error boundary for every verb: a user mistake is one line and exit 2, a bug shows
its traceback (issues 13 and 14). Before, ``icpi run`` answered each of these with a Python
traceback and exit 1; ``--iterations 0`` crashed after creating the run directory."""

from __future__ import annotations

import json
import logging

import pytest

import icpi.cli.run as run_verb
from icpi.cli.main import main

MISTAKES = {
    "iterations-0": ["run", "--task", "slide", "--method", "random", "--iterations", "0"],
    "theta-steps-0": ["run", "--task", "slide", "--theta-steps", "0"],
    "n-0": ["run", "--task", "slide", "-n", "0"],
    "k-above-dataset": ["run", "--task", "slide", "--method", "lknn20", "--k", "500"],
    "dataset-size-above": ["run", "--task", "slide", "--method", "knn5", "--dataset-size", "999"],
    "unknown-method": ["run", "--task", "slide", "--method", "gradient-descent"],
    "unknown-task": ["run", "--task", "juggle", "--method", "random"],
    "setting-of-another-method": ["run", "--task", "slide", "--method", "lknn20", "--xi", "1"],
    "missing-task": ["run", "--method", "random"],
    "bench-empty-seeds": ["bench", "--tasks", "slide", "--methods", "random", "--seeds", ""],
    "bench-bad-spec": ["bench", "--tasks", "slide", "--methods", "knn5[k=x]", "--seeds", "0"],
    "collect-size-0": ["collect", "--task", "slide", "--size", "0"],
    "lang-bad-combination": ["lang", "--task", "writing", "--method", "me-icpo"],
    "run-offline-no-cache": ["run", "--task", "slide", "--offline", "--no-cache"],
    "bench-offline-no-cache": ["bench", "--tasks", "slide", "--offline", "--no-cache"],
    "lang-offline-no-cache": ["lang", "--task", "game24", "--offline", "--no-cache"],
}


@pytest.mark.parametrize("argv", MISTAKES.values(), ids=MISTAKES)
def test_user_mistake_is_one_line_and_exit_2(argv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"icpi {argv[0]}: ")
    assert not (out / "records.jsonl").exists()


def test_foreign_run_directory_and_buffer_are_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--task", "slide", "--method", "random", "--iterations", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["run", "--task", "slide", "--method", "random", "--iterations", "2",
                 "--seed", "9", "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "another configuration (run.seed: 0 -> 9" in err and len(err.splitlines()) == 1
    # an attempts.jsonl of another run dropped into an ICPI run directory
    icpi_dir = tmp_path / "icpi"
    argv = [
        "run",
        "--task",
        "slide",
        "--method",
        "icpi",
        "--iterations",
        "1",
        "--out",
        str(icpi_dir),
    ]
    assert main([*argv, "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]) == 0
    (icpi_dir / "attempts.jsonl").write_text('{"kind": "header", "fingerprint": {"x": 1}}\n')
    capsys.readouterr()
    assert main([*argv, "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]) == 2
    assert "belongs to another run" in capsys.readouterr().err


def test_an_old_run_directory_is_refused_clearly(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"run": {"task": "slide", "icpi": {"k": 20}}}))
    assert main(["run", "--task", "slide", "--method", "random", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "earlier version of icpi (config format 1" in err and "new directory" in err


def test_corrupt_dataset_is_one_line(tmp_path, capsys):
    bad = tmp_path / "ds"
    bad.mkdir()
    (bad / "meta.json").write_text("{not json")
    argv = ["run", "--task", "slide", "--method", "knn5", "--dataset", str(bad)]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "icpi collect" in err and len(err.splitlines()) == 1


def test_config_file_mistakes(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  task: slide\n  itrations: 3\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "unknown setting 'itrations'" in capsys.readouterr().err
    cfg.write_text("run:\n  task: slide\nllm:\n  sampling:\n    seed: 3\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "llm.seed is set by the command itself (per call" in capsys.readouterr().err
    # a benchmark sets each run's task, seed and iterations, and a language run the policy's
    # sampling: a file that sets them is refused, not silently overridden or dropped
    cfg.write_text("run:\n  task: rope-swing\n  seed: 0\n")
    argv = ["bench", "--tasks", "slide", "--methods", "random", "--seeds", "3", "--config"]
    assert main([*argv, str(cfg), "--out", str(tmp_path / "b")]) == 2
    assert "run.seed, run.task is set by the command itself" in capsys.readouterr().err
    cfg.write_text("llm:\n  temperature: 0.9\n")
    argv = ["lang", "--task", "game24", "--problems", "1", "--config", str(cfg)]
    assert main([*argv, "--out", str(tmp_path / "l")]) == 2
    assert "llm.temperature is set by the command itself" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path)]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_an_invalid_setting_never_echoes_a_credential(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-TOPSECRET")
    url = "http://user:hunter2@127.0.0.1:9/v1"
    assert main(["llm", "ask", "hi", "--base-url", url, "--timeout", "-1"]) == 2
    err = capsys.readouterr().err
    assert "timeout_s" in err and "sk-TOPSECRET" not in err and "hunter2" not in err
    # a malformed key itself is named, never shown
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  task: slide\nllm:\n  api_key: [sk-LISTED]\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "api_key" in err and "sk-LISTED" not in err


def test_debug_level_shows_the_traceback_of_a_user_error(tmp_path, capsys, caplog):
    argv = ["--log-level", "DEBUG", "run", "--task", "slide", "--method", "nope"]
    with caplog.at_level(logging.DEBUG):
        assert main([*argv, "--out", str(tmp_path)]) == 2
    assert "Traceback" in caplog.text and "unknown method" in caplog.text


def test_a_bug_in_the_package_shows_its_traceback(tmp_path, monkeypatch):
    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(run_verb, "resolve", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["run", "--task", "slide", "--out", str(tmp_path)])
