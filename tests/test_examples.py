"""The own-task example runs as documented: from Python, from an Optuna study, and through
the CLI with ``--task path/to/file.py:Class`` for every verb."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icpi.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PUTT = f"{ROOT / 'examples' / 'putt.py'}:PuttTask"


def test_own_task_example_script(tmp_path):
    pytest.importorskip("optuna")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "own_task.py"), "--out", str(tmp_path),
         "--size", "40", "--iterations", "8"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "dataset: 40 examples" in out and "lknn20 extended to 13 rollouts" in out
    assert "optuna icpi+" in out and "optuna tpe" in out
    assert (tmp_path / "studies.db").is_file()
    assert len((tmp_path / "run-icpi+" / "records.jsonl").read_text().splitlines()) == 8


def test_every_verb_takes_your_own_task(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["collect", "--task", PUTT, "--out", str(data), "--size", "30"]) == 0
    meta = json.loads((data / "meta.json").read_text())
    assert meta["task"] == "putt" and meta["task_spec"] == PUTT
    assert meta["goal"]["region_low"] == [1.0, -0.5]
    run = ["run", "--task", PUTT, "--dataset", str(data), "--iterations", "5"]
    assert main([*run, "--method", "jacobian", "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["task"] == PUTT and summary["iterations"] == 5
    bench = ["bench", "--tasks", PUTT, "--methods", "random,lknn20", "--seeds", "0-1"]
    bench += ["--iterations", "4", "--dataset", str(data), "--out", str(tmp_path / "b")]
    assert main([*bench, "--no-progress"]) == 0
    assert "putt.py:PuttTask" in capsys.readouterr().out
    # the runs of a task given by an absolute path stay inside the benchmark directory
    runs = sorted(p.parents[2].name for p in (tmp_path / "b" / "runs").rglob("summary.json"))
    assert runs == ["putt.py_PuttTask"] * 4
    assert not (ROOT / "examples" / "putt.py:PuttTask").exists()
    # a task that ships no dataset says how to build one
    assert main(["run", "--task", PUTT, "--method", "lknn20", "--out", str(tmp_path / "x")]) == 2
    assert "icpi collect --task SPEC" in capsys.readouterr().err
    # and a spec that names no task is one line
    assert (
        main(
            ["run", "--task", f"{ROOT / 'examples' / 'putt.py'}:Nope", "--out", str(tmp_path / "y")]
        )
        == 2
    )
    assert "cannot load task" in capsys.readouterr().err


@pytest.mark.slow
def test_one_method_spec_through_five_front_ends(tmp_path):
    """examples/one_spec.py: icpi run, bench, report, api.improve and ICPISampler agree."""
    pytest.importorskip("optuna")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "one_spec.py"), "--spec", "icpi+[model=off]",
         "--iterations", "5", "--size", "40", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [ln.split() for ln in proc.stdout.splitlines()[-4:]]
    assert [r[0] for r in rows] == ["icpi", "icpi", "api.improve", "ICPISampler"]
    assert all(r[-1] == "yes" for r in rows) and len({r[-2] for r in rows}) == 1
    assert (tmp_path / "bench" / "report.html").is_file()
