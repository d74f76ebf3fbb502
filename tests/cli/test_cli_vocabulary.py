"""One vocabulary across every front end (issue 22, items 1 and 7).

One method spec grammar (``icpi+[model=off]``) is taken by ``icpi run --method``, ``icpi
bench --methods``, config files (run and bench sections), ``api.improve`` and the Optuna
sampler, and gives the same run everywhere; the old spelling ``--method icpi+ --method-model
off`` still works; one default method; every verb's help shows its defaults in plain text.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

import pytest

from icpi.cli.main import build_parser, main
from icpi.errors import ConfigError
from icpi.manipulation.config import DEFAULT_METHOD, RunConfig, parse_method_spec

SPEC = "icpi+[model=off]"
RUN = ["--task", "slide", "--seed", "1", "--iterations", "6"]


def thetas(run_dir: Path) -> list[list[float]]:
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return [json.loads(x)["theta"] for x in lines]


def test_one_method_spec_gives_one_run_in_every_front_end(tmp_path, capsys):
    pytest.importorskip("optuna")
    import optuna

    from icpi import api
    from icpi.integrations.optuna_sampler import ICPISampler, objective_for

    assert main(["run", *RUN, "--method", SPEC, "--out", str(tmp_path / "run")]) == 0
    reference = thetas(tmp_path / "run")
    assert len(reference) == 6
    config = json.loads((tmp_path / "run" / "config.json").read_text())["run"]
    assert config["method"] == "icpi+" and config["settings"]["model"] == "off"
    # the old spelling: the id and the setting's flag
    old = ["run", *RUN, "--method", "icpi+", "--method-model", "off"]
    assert main([*old, "--out", str(tmp_path / "old")]) == 0
    assert thetas(tmp_path / "old") == reference
    # a config file's run section
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"run:\n  task: slide\n  method: '{SPEC}'\n  seed: 1\n  iterations: 6\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "file")]) == 0
    assert thetas(tmp_path / "file") == reference
    # the benchmark, from flags and from a config file's bench section
    bench = ["bench", "--tasks", "slide", "--methods", SPEC, "--seeds", "1", "--iterations"]
    assert main([*bench, "6", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert thetas(tmp_path / "b" / "runs" / "slide" / "icpi+_model=off" / "seed-1") == reference
    bcfg = tmp_path / "bench.toml"
    bcfg.write_text(
        f'[bench]\ntasks = ["slide"]\nmethods = ["{SPEC}"]\nseeds = [1]\niterations = 6\n'
        "progress = false\n"
    )
    assert main(["bench", "--config", str(bcfg), "--out", str(tmp_path / "bf")]) == 0
    assert thetas(tmp_path / "bf" / "runs" / "slide" / "icpi+_model=off" / "seed-1") == reference
    assert f"| {SPEC} |" in capsys.readouterr().out
    # the Python API
    summary = api.improve("slide", tmp_path / "api", method=SPEC, seed=1, iterations=6)
    assert thetas(tmp_path / "api") == reference and summary["iterations"] == 6
    # the Optuna sampler
    sampler = ICPISampler("slide", method=SPEC, seed=1, n_trials=6)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective_for("slide", sampler.instance), n_trials=6)
    names = sampler.names
    assert [[t.params[n] for n in names] for t in study.trials] == reference


def test_a_spec_and_a_flag_for_one_setting_are_refused(tmp_path, capsys):
    argv = ["run", *RUN, "--method", "icpi[k=10]", "--k", "5", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "settings.k set twice in the flags: in the method spec 'icpi[k=10]'" in err
    # a flag over a spec given in the file is the usual override
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  task: slide\n  method: 'lknn20[k=10]'\n  iterations: 2\n")
    assert main(["run", "--config", str(cfg), "--k", "7", "--out", str(tmp_path / "o")]) == 0
    config = json.loads((tmp_path / "o" / "config.json").read_text())["run"]
    assert (config["method"], config["settings"]["k"]) == ("lknn20", 7)
    assert main(["run", *RUN, "--method", "icpi+[modl=off]", "--out", str(tmp_path / "x")]) == 2
    assert "unknown setting 'modl' (known: " in capsys.readouterr().err
    assert main(["run", *RUN, "--method", "icpi+[model]", "--out", str(tmp_path / "x")]) == 2
    assert "bad setting 'model' in 'icpi+[model]'; use key=value" in capsys.readouterr().err


def test_the_grammar_reads_each_methods_settings_dataclass():
    from icpi.manipulation.methods import load_methods

    for name, cls in load_methods().items():
        for f in __import__("dataclasses").fields(cls.Settings):
            spec = parse_method_spec(f"{name}[{f.name}=x]")
            assert spec.settings == {f.name: "x"}, (name, f.name)
    with pytest.raises(ConfigError, match="set twice in the method spec"):
        parse_method_spec("icpi[k=1;k=2]")


def test_bench_config_file_holds_tasks_methods_and_seeds(tmp_path, capsys):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(
        "bench:\n  tasks: slide\n  preset: paper\n  seeds: 0-1\n  iterations: 2\n"
        "run:\n  theta0: random\n"
    )
    out = tmp_path / "b"
    # the flag's methods win over the file's preset
    argv = ["bench", "--config", str(cfg), "--methods", "random,knn5", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "runs" / "slide").iterdir()) == ["knn5", "random"]
    cfg.write_text("bench:\n  methods: random\n  preset: paper\n")
    assert main(["bench", "--config", str(cfg), "--out", str(tmp_path / "c")]) == 2
    assert "methods and preset both set" in capsys.readouterr().err
    # noise draws belong to the model-quality preset: elsewhere they would do nothing
    argv = ["bench", "--methods", "random", "--draws", "3", "--out", str(tmp_path / "d")]
    assert main(argv) == 2
    assert "noise draws of the model-quality preset only" in capsys.readouterr().err
    # so do proposers, and only the preset's own
    argv = ["bench", "--methods", "random", "--proposers", "sigma0", "--out", str(tmp_path / "d")]
    assert main(argv) == 2
    assert "proposers chooses among the model-quality preset's" in capsys.readouterr().err
    argv = ["bench", "--preset", "model-quality", "--proposers", "sigma0,gpt4", "--out",
            str(tmp_path / "d")]  # fmt: skip
    assert main(argv) == 2
    assert "got proposers=sigma0,gpt4" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    cfg.write_text("run:\n  iterations: 3\n")
    assert main(["bench", "--config", str(cfg), "--out", str(tmp_path / "c")]) == 2
    assert "give tasks, methods, seeds and iterations in its bench: section" in (
        capsys.readouterr().err
    )


def test_one_default_method_everywhere():
    from icpi import api
    from icpi.manipulation.bench import BenchConfig
    from icpi.manipulation.config import load_run_config

    pytest.importorskip("optuna")
    from icpi.integrations.optuna_sampler import ICPISampler

    assert DEFAULT_METHOD == "icpi+"
    assert RunConfig(task="slide").method == DEFAULT_METHOD
    assert load_run_config({"task": "slide"}).method == DEFAULT_METHOD
    assert inspect.signature(api.improve).parameters["method"].default == DEFAULT_METHOD
    assert inspect.signature(ICPISampler).parameters["method"].default == DEFAULT_METHOD
    assert BenchConfig().methods.split(",")[0] == DEFAULT_METHOD
    assert BenchConfig().iterations == RunConfig.iterations
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"default method of every front end is `{DEFAULT_METHOD}`" in readme


def _parsers(parser: argparse.ArgumentParser, name: str = "icpi"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {verb}")


def test_every_verb_help_is_plain_and_shows_its_defaults():
    for name, parser in _parsers(build_parser()):
        text = parser.format_help()
        assert "``" not in text and ":func:" not in text and ":class:" not in text, name
        assert "(default: required)" not in text and "default: None" not in text, name
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            help_text = formatter._get_help_string(action)  # type: ignore[attr-defined]
            meaningful = action.default not in (None, argparse.SUPPRESS) and action.nargs != 0
            if meaningful and not action.required:
                assert "default" in help_text, (name, action.option_strings)
    run_help = dict(_parsers(build_parser()))["icpi run"].format_help()
    assert "path/file.py:Class" in run_help and "icpi+[model=off]" in run_help
    assert '(default: "icpi+")' in run_help
    assert "path/file.py:Class" in dict(_parsers(build_parser()))["icpi bench"].format_help()
    assert "path/to/file.py:Class" in dict(_parsers(build_parser()))["icpi collect"].format_help()


def test_run_method_refuses_the_settings_of_another_method(tmp_path):
    from icpi.manipulation.methods.icpi import ICPISettings
    from icpi.manipulation.run import run_method

    cfg = RunConfig(task="slide", method="lknn20", iterations=2, settings=ICPISettings(k=3))
    with pytest.raises(
        ConfigError, match=r"method lknn20 takes \w+, but the RunConfig holds ICPISettings"
    ):
        run_method(cfg, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    # the bare default of RunConfig(task, method=...) is the method's defaults
    summary = run_method(RunConfig(task="slide", method="lknn20", iterations=2), tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert summary["iterations"] == 2 and config["run"]["settings"]["k"] == 20
