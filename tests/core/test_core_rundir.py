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


def test_a_run_written_before_a_setting_existed_resumes_at_its_legacy_value(tmp_path):
    old_cfg = {"run": {"settings": {"k": 10}}}
    run = RunDir.open(tmp_path / "run", old_cfg, seed=3)  # written before "margin" existed
    task = ToyLinearTask.sample(0)
    loop = make_toy_improver(task, ScriptedSampler(copy_nearest_example), buffer=run.buffer())
    loop.run(Budget(max_iterations=3))
    legacy = {"run.settings.margin": 0.0}
    # a setting at another value than the run had: still another configuration
    changed = {"run": {"settings": {"k": 10, "margin": 0.1}}}
    with pytest.raises(ValueError, match="another configuration"):
        RunDir.open(tmp_path / "run", changed, seed=3, legacy=legacy)
    # at the value that reproduces the old run: resumed, every finished attempt kept
    new_cfg = {"run": {"settings": {"k": 10, "margin": 0.0}}}
    with pytest.raises(ValueError, match="another configuration"):
        RunDir.open(tmp_path / "run", new_cfg, seed=3)  # without knowing the legacy value
    again = RunDir.open(tmp_path / "run", new_cfg, seed=3, legacy=legacy)
    assert json.loads(again.config_file.read_text())["run"]["settings"]["margin"] == 0.0
    loop2 = make_toy_improver(task, ScriptedSampler(copy_nearest_example), buffer=again.buffer())
    assert loop2.run(Budget(max_iterations=5)).resumed == 3
    # from then on it is a run of the new configuration
    assert RunDir.open(tmp_path / "run", new_cfg, seed=3).config_file.exists()
