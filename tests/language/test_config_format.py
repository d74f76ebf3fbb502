"""The language run's configuration: one class per task and method, config.json format 3.

``data/run_format2`` is a run directory written by icpi before the settings were split
(format 2: every setting flat under ``run``; an embedded-model run of 2 puzzles × 3 rounds).
"""

import json
import shutil
from pathlib import Path

import pytest

from icpi.config import load
from icpi.core import ScriptedSampler
from icpi.errors import ConfigError, RunDirError
from icpi.language.config import (
    LANG_CONFIG_FORMAT,
    LangConfig,
    dump_lang_config,
    lang_config,
    load_lang_config,
    migrate_config,
    read_run_config,
)
from icpi.language.methods.icrl import ICRLSettings
from icpi.language.methods.me_icpo import MeIcpoSettings
from icpi.language.runner import run_language
from icpi.language.tasks import Game24Settings

OLD_RUN = Path(__file__).parent / "data" / "run_format2"


def test_an_old_run_directory_reads_in_the_new_shape():
    config = read_run_config(OLD_RUN)
    assert config["format"] == LANG_CONFIG_FORMAT and config["migrated_from"] == 2
    run = config["run"]
    assert run["task_settings"] == {
        "step_judge": "llm", "answer_judge": "llm", "split": "tot-test", "puzzles_file": None,
    }  # fmt: skip
    assert run["settings"] == json.loads(json.dumps(load(ICRLSettings, {}).__dict__))
    assert (run["max_tokens"], run["judge_tokens"], run["rounds"]) == (64, 16, 3)
    assert run["prompts"] == "package"
    assert "k" not in json.dumps(run["settings"])  # ME-ICPO's settings did not apply
    cfg = load_lang_config(run)
    assert isinstance(cfg.settings, ICRLSettings) and cfg.settings.ablation is None
    assert config["problems"] == ["24:4 5 6 10", "24:1 2 4 7"]  # the rest is kept


def test_an_old_run_is_not_resumed_and_keeps_its_files(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(OLD_RUN, old)

    def files():  # the directory lock's file aside
        return {p.name: p.read_bytes() for p in old.rglob("*") if p.is_file() and p.name != ".lock"}

    before = files()
    cfg = load_lang_config(read_run_config(OLD_RUN)["run"])
    with pytest.raises(RunDirError, match=r"earlier version.*format 2, this version writes 3"):
        run_language(cfg, old, sampler=ScriptedSampler(["x"]))
    assert files() == before


def test_an_old_me_icpo_config_migrates_its_settings():
    old = {
        "format": 2,
        "run": {
            "task": "math",
            "method": "me-icpo",
            "ablation": "no-entropy",
            "k": 4,
            "entropy_k": 3,
            "final_k": 5,
            "math_file": "q.jsonl",
            "step_judge": "llm",
            "split": "tot-test",
            "threshold": 7.0,
            "expert_bonus": 0.0,
            "expert_share": 0.0,
            "expert_reject": False,
            "judge_tokens": 16,
            "problems": 2,
            "rounds": 1,
        },
    }
    run = migrate_config(old)["run"]
    assert run["task_settings"] == {"math_file": "q.jsonl"}
    s = run["settings"]
    assert (s["k"], s["entropy_k"], s["final_k"], s["ablation"]) == (4, 3, 5, "no-entropy")
    with pytest.raises(RunDirError, match="format 1"):
        migrate_config({"format": 1, "run": {}})


def test_flat_and_nested_settings_are_one_config():
    flat = lang_config(method="me-icpo", k=4, step_judge="rule", problems=2)
    nested = load_lang_config(
        {"method": "me-icpo", "problems": 2, "settings": {"k": 4},
         "task_settings": {"step_judge": "rule"}}
    )  # fmt: skip
    assert flat == nested and isinstance(flat.task_settings, Game24Settings)
    assert isinstance(flat.settings, MeIcpoSettings) and flat.settings.k == 4
    again = load_lang_config(dump_lang_config(flat))
    assert again == flat  # what config.json records loads back to the same config


@pytest.mark.parametrize(
    "values, match",
    [
        ({"method": "icrl-preset", "k": 4}, "'k' does not apply .*me-icpo"),
        ({"method": "best-of-n", "ablation": "no-reward"}, "'ablation' does not apply"),
        ({"task": "writing", "step_judge": "rule"}, "'step_judge' does not apply .*game24"),
        ({"method": "me-icpo", "ablation": "short-context"}, "ablation"),
        ({"task": "math"}, "math-file"),
        ({"banana": 1}, "unknown setting 'banana'"),
        ({"method": "nope"}, "unknown language method 'nope'"),
        ({"start": 5, "end": 5}, "end"),
    ],
)
def test_settings_of_other_tasks_and_methods_are_refused_by_name(values, match):
    with pytest.raises(ConfigError, match=match):
        lang_config(**values)


def test_a_direct_config_takes_the_defaults_of_its_task_and_method(tmp_path):
    cfg = LangConfig(method="me-icpo", problems=1, rounds=1)  # settings left to resolve
    out = tmp_path / "r"
    run_language(cfg, out, sampler=ScriptedSampler(["Answer: 1 + 2 = 3"]))
    stored = json.loads((out / "config.json").read_text())
    assert stored["format"] == 3 and stored["kind"] == "language"
    assert stored["run"]["settings"]["k"] == 16 and stored["run"]["task_settings"]["split"]
