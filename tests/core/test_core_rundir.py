import json

import pytest

from icpi.core import Budget, ScriptedSampler
from icpi.core.rundir import RunDir, redact
from icpi.core.samplers import copy_nearest_example
from icpi.core.toy import ToyLinearTask, make_toy_improver


def test_redact_nested():
    cfg = {"llm": {"api_key": "sk-x", "model": "m", "Auth_Token": "t"}, "k": [{"secret": 1}]}
    assert redact(cfg) == {"llm": {"model": "m"}, "k": [{}]}


def test_run_dir_create_resume_and_refuse(tmp_path):
    cfg = {"task": "toy", "k": 10, "llm": {"api_key": "sk-SECRET", "model": "m"}}
    run = RunDir.open(tmp_path / "run", cfg, seed=3)
    assert "sk-SECRET" not in run.config_file.read_text()
    meta = json.loads(run.meta_file.read_text())
    assert meta["seed"] == 3 and "numpy" in meta["versions"]
    task = ToyLinearTask.sample(0)
    loop = make_toy_improver(task, ScriptedSampler(copy_nearest_example), buffer=run.buffer())
    loop.run(Budget(max_iterations=3))
    again = RunDir.open(tmp_path / "run", cfg, seed=3)
    loop2 = make_toy_improver(task, ScriptedSampler(copy_nearest_example), buffer=again.buffer())
    assert loop2.run(Budget(max_iterations=5)).resumed == 3
    with pytest.raises(ValueError, match="another configuration"):
        RunDir.open(tmp_path / "run", {**cfg, "k": 20}, seed=3)
