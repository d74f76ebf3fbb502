"""Paths and leftovers (issue 22, item 5): a run records a task spec that loads from any
directory, and a finished collection keeps no ``.lock``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from icpi.cli.main import main
from icpi.core import lock as lock_module
from icpi.core.lock import LOCK_FILE, DirLock
from icpi.envs import load_task, portable_task_spec, task_spec_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's project folder with the putt task in it, as the working directory."""
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(ROOT / "examples" / "putt.py", proj / "putt.py")
    monkeypatch.chdir(proj)
    return proj


def test_a_run_records_an_absolute_task_spec_and_resumes_from_elsewhere(project, tmp_path):
    assert main(["collect", "--task", "putt.py:PuttTask", "--out", "data", "--size", "30"]) == 0
    assert not (project / "data" / LOCK_FILE).exists()  # the finished dataset has no .lock
    meta = json.loads((project / "data" / "meta.json").read_text())
    assert meta["task_spec"] == f"{project / 'putt.py'}:PuttTask"
    assert str(project) in meta["command"]
    run = ["run", "--task", "putt.py:PuttTask", "--method", "lknn20", "--dataset", "data"]
    assert main([*run, "--iterations", "3", "--out", "runs/p"]) == 0
    config = json.loads((project / "runs" / "p" / "config.json").read_text())
    assert config["run"]["task"] == f"{project / 'putt.py'}:PuttTask"
    summary = json.loads((project / "runs" / "p" / "summary.json").read_text())
    assert summary["task_id"] == "putt"
    # from another directory: extend the run with another relative path to the same file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    again = ["run", "--task", "../proj/putt.py:PuttTask", "--method", "lknn20"]
    again += ["--dataset", str(project / "data"), "--iterations", "5"]
    assert main([*again, "--out", str(project / "runs" / "p")]) == 0
    lines = (project / "runs" / "p" / "records.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == [0, 1, 2, 3, 4]
    # and the recorded spec loads the task here
    assert load_task(config["run"]["task"]).task_id == "putt"


def test_a_run_recorded_with_a_relative_spec_still_resumes(project):
    assert main(["collect", "--task", "putt.py:PuttTask", "--out", "data", "--size", "30"]) == 0
    run = ["run", "--task", "putt.py:PuttTask", "--method", "lknn20", "--dataset", "data"]
    assert main([*run, "--iterations", "2", "--out", "old"]) == 0
    config_file = project / "old" / "config.json"
    config = json.loads(config_file.read_text())
    config["run"]["task"] = "putt.py:PuttTask"  # as an earlier version recorded it
    config_file.write_text(json.dumps(config))
    assert main([*run, "--iterations", "3", "--out", "old"]) == 0
    assert json.loads(config_file.read_text())["run"]["task"] == "putt.py:PuttTask"


def test_the_spec_of_a_task_object_rebuilds_it(project):
    from icpi import api

    task = load_task("putt.py:PuttTask")
    spec = task_spec_of(task)
    assert spec == f"{project / 'putt.py'}:PuttTask"
    assert task_spec_of(load_task("slide")) == "slide"
    assert portable_task_spec("slide-gc") == "slide-gc"
    assert portable_task_spec("icpi.envs.slide:SlideTask") == "icpi.envs.slide:SlideTask"
    api.collect(task, "data", size=30)
    api.improve(task, "runs/obj", method="lknn20", dataset="data", iterations=2)
    recorded = json.loads((project / "runs" / "obj" / "config.json").read_text())["run"]["task"]
    assert recorded == spec and load_task(recorded).task_id == "putt"


def test_a_lock_file_removed_by_its_last_owner_is_not_locked_again(tmp_path, monkeypatch):
    first = DirLock(tmp_path)
    first.release(remove=True)
    assert not (tmp_path / LOCK_FILE).exists()
    # another process opened the old file just before its owner removed it: the taker must
    # notice that it locked a removed file and lock the file now at the path instead
    real_open = os.open
    opened: list[int] = []

    def open_then_owner_removes(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        if not opened:
            opened.append(fd)
            os.unlink(path)
        return fd

    monkeypatch.setattr(lock_module.os, "open", open_then_owner_removes)
    taker = DirLock(tmp_path)
    monkeypatch.setattr(lock_module.os, "open", real_open)
    assert taker.held and (tmp_path / LOCK_FILE).exists()
    assert os.fstat(taker._fd).st_ino == (tmp_path / LOCK_FILE).stat().st_ino  # type: ignore[arg-type]
    with pytest.raises(Exception, match="in use by another run"):
        DirLock(tmp_path)
    taker.release()
