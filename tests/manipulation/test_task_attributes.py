"""A task's own success threshold, prompt unit and outcome text (issue 22, item 4).

``examples/throw.py`` (a numpy projectile, 1-D outcome) declares ``success_threshold =
0.1`` m and ``e_unit = 0.1`` m; the shipped tasks keep the defaults, 5 mm and 1 cm.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from icpi.cli.main import main
from icpi.envs import load_task, make_task
from icpi.envs.spec import E_UNIT, SUCCESS_TOLERANCE, TaskError, e_unit, success_threshold
from icpi.llm.testing import FakeOpenAI, Reply, completion_body
from icpi.manipulation.dataset.table import E_DEFINITION, e_definition

ROOT = Path(__file__).resolve().parents[2]
THROW = f"{ROOT / 'examples' / 'throw.py'}:ThrowTask"


@pytest.fixture(scope="module")
def throw_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("throw") / "data"
    assert main(["collect", "--task", THROW, "--out", str(out), "--size", "60"]) == 0
    return out


def test_defaults_and_a_tasks_own_values():
    slide = make_task("slide")
    assert (success_threshold(slide), e_unit(slide)) == (SUCCESS_TOLERANCE, E_UNIT) == (0.005, 0.01)
    throw = load_task(THROW)
    assert (success_threshold(throw), e_unit(throw)) == (0.1, 0.1)

    class Bad:
        task_id = "bad"
        e_unit = 0.0

    with pytest.raises(TaskError, match=r"task 'bad': e_unit must be a finite number > 0"):
        e_unit(Bad())


def test_the_dataset_describes_the_tasks_own_outcome(throw_data):
    meta = json.loads((throw_data / "meta.json").read_text())
    assert "where the ball first touches the ground" in meta["e_definition"]
    assert "puck" not in meta["e_definition"] and "rope" not in meta["e_definition"]
    # the shipped tasks' sidecars keep their text (their sha256 sums are shipped)
    assert e_definition(make_task("rope-swing")) == E_DEFINITION
    shipped = json.loads((ROOT / "icpi" / "datasets" / "slide" / "meta.json").read_text())
    assert shipped["e_definition"] == E_DEFINITION

    class Plain:
        task_id = "plain"

    assert "what the task's outcome method returns" in e_definition(Plain())  # type: ignore[arg-type]


def test_the_prompt_writes_e_in_the_tasks_unit(throw_data, tmp_path):
    fake = FakeOpenAI()
    fake.set(Reply(body=completion_body(" 1 -1")))
    out = tmp_path / "run"
    argv = ["run", "--task", THROW, "--method", "icpi", "--dataset", str(throw_data)]
    argv += ["--iterations", "2", "--out", str(out), "--base-url", fake.base_url, "--model", "m"]
    try:
        assert main(argv) == 0
        prompt = next(r["body"]["prompt"] for r in fake.requests if "prompt" in r["body"])
    finally:
        fake.close()
    assert "error (units of 0.1 m)" in prompt
    record = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    query = prompt.rstrip().splitlines()[-1]
    *_, e_text, arrow = query.split()
    assert arrow == "->" and int(e_text) == round(record["e"][0] / 0.1)
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["settings"]["e_unit"] == 0.1  # what ran is recorded
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success_threshold"] == 0.1
    assert summary["success"] == (summary["best_cost"] < 0.1)
    # a spec's own unit wins over the task's
    fake = FakeOpenAI()
    fake.set(Reply(body=completion_body(" 1 -1")))
    argv[argv.index("icpi")] = "icpi[e_unit=0.01]"
    argv[argv.index(str(out))] = str(tmp_path / "cm")
    argv[argv.index("--base-url") + 1] = fake.base_url
    try:
        assert main(argv) == 0
        prompt = next(r["body"]["prompt"] for r in fake.requests if "prompt" in r["body"])
    finally:
        fake.close()
    assert "error (cm)" in prompt


def test_bench_names_tasks_by_id_and_judges_success_by_each_threshold(throw_data, tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["bench", "--tasks", THROW, "--methods", "jacobian,random", "--seeds", "0-1"]
    argv += ["--iterations", "6", "--dataset", str(throw_data), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| method | throw |" in table and "throw.py" not in table
    assert "Success rate (best < the task's success threshold: throw 0.1)" in table
    import pyarrow.csv as pacsv

    summary = pacsv.read_csv(out / "summary.csv").to_pylist()
    for row in summary:
        assert row["task"] == "throw"
        best = []
        for seed in (0, 1):
            run = out / "runs" / "throw.py_ThrowTask" / row["method"] / f"seed-{seed}"
            best.append(json.loads((run / "summary.json").read_text())["best_cost"])
        assert row["success_rate"] == pytest.approx(np.mean([b < 0.1 for b in best]))
    assert re.search(r"\| jacobian \| 100%", table)  # a 1-D throw is easy for the Jacobian
