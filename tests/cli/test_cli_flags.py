"""Every verb's flags reach the endpoint, and config.json records what was sent (issue 13).

Before issue 13: ``icpi run --max-tokens 200 --stop END`` sent ``max_tokens=24,
stop=["\\n"]`` while config.json said ``stop=["END"]``; the LLM ``--seed`` was shadowed;
``icpi run --method random`` was refused; ``lang`` runs dropped every ``*_tokens`` key.
"""

from __future__ import annotations

import json

import pytest

from icpi.cli.main import main
from icpi.core.loop import derive_seed
from icpi.llm.testing import Reply, chat_body, completion_body
from icpi.manipulation.methods import load_methods


def completions(fake):
    return [r["body"] for r in fake.requests if r["path"].endswith("/completions")]


def test_run_sends_the_sampling_flags_and_records_them(fake, tmp_path):
    fake.set(Reply(body=completion_body(" 1 -1 0", " 2 0 0")))
    out = tmp_path / "run"
    argv = [
        "run", "--task", "slide", "--method", "icpi", "--seed", "4", "--iterations", "3",
        "--out", str(out),
        "--base-url", fake.base_url, "--model", "fake-model", "--max-tokens", "200",
        "--stop", "END", "--stop", "\n\n", "--temperature", "0.3", "--top-p", "0.9",
        "-n", "2", "--k", "7", "--resample-temperature", "0.8",
    ]  # fmt: skip
    assert main(argv) == 0
    bodies = completions(fake)
    assert len(bodies) == 2  # θ0 needs no call; iterations 1 and 2 one call each
    for i, body in enumerate(bodies, start=1):
        assert body["model"] == "fake-model"
        assert (body["max_tokens"], body["stop"]) == (200, ["END", "\n\n"])
        assert (body["temperature"], body["top_p"], body["n"]) == (0.3, 0.9, 2)
        assert body["seed"] == derive_seed(4, i, 0)  # each call's seed derives from --seed
        assert body["prompt"].count("->") == 7 + 1  # --k 7 examples and the query
    config = json.loads((out / "config.json").read_text())
    sampling = config["llm"]["sampling"]
    assert sampling == {
        "max_tokens": 200,
        "stop": ["END", "\n\n"],
        "temperature": 0.3,
        "top_p": 0.9,
        "per_call": ["n", "seed"],
    }
    assert config["llm"]["model"] == "fake-model"
    assert config["run"]["seed"] == 4
    assert config["run"]["settings"]["n_samples"] == 2
    assert config["run"]["settings"]["k"] == 7
    assert config["run"]["settings"]["resample_temperature"] == 0.8


def test_run_defaults_are_the_methods_and_are_recorded(fake, tmp_path):
    fake.set(Reply(body=completion_body(" 1 -1 0")))
    out = tmp_path / "run"
    argv = ["run", "--task", "slide", "--method", "icpi", "--iterations", "2", "--out", str(out)]
    assert main([*argv, "--base-url", fake.base_url, "--model", "m"]) == 0
    (body,) = completions(fake)
    assert (body["max_tokens"], body["stop"], body["temperature"]) == (24, ["\n"], 0.0)
    sampling = json.loads((out / "config.json").read_text())["llm"]["sampling"]
    assert (sampling["max_tokens"], sampling["stop"]) == (24, ["\n"])


def test_run_config_file_and_flags(fake, tmp_path):
    fake.set(Reply(body=completion_body(" 1 -1 0")))
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        '[run]\ntask = "ball-roll-gc"\nmethod = "icpi"\niterations = 2\n[run.settings]\nk = 9\n'
        '[llm]\nmodel = "from-file"\n[llm.sampling]\nmax_tokens = 11\n'
    )
    out = tmp_path / "run"
    argv = ["run", "--config", str(cfg), "--out", str(out), "--base-url", fake.base_url]
    assert main([*argv, "--max-tokens", "12"]) == 0  # the flag wins over the file
    (body,) = completions(fake)
    assert body["model"] == "from-file" and body["max_tokens"] == 12
    assert body["prompt"].count("->") == 9 + 1
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["task"] == "ball-roll-gc" and config["run"]["settings"]["k"] == 9
    yaml_cfg = tmp_path / "run.yaml"
    yaml_cfg.write_text("run:\n  task: slide\n  method: lknn20\n  settings: {k: 5}\n")
    assert main(["run", "--config", str(yaml_cfg), "--out", str(tmp_path / "y")]) == 0
    assert json.loads((tmp_path / "y" / "config.json").read_text())["run"]["settings"]["k"] == 5


@pytest.mark.parametrize("method", list(load_methods()))
def test_every_method_of_the_readme_table_runs_through_icpi_run(method, fake, tmp_path):
    fake.set(Reply(body=completion_body(" 2 -1 0")))
    out = tmp_path / method
    argv = ["run", "--task", "slide-gc", "--method", method, "--iterations", "3"]
    argv += ["--out", str(out), "--base-url", fake.base_url, "--model", "m"]
    assert main(argv) == 0
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [0, 1, 2]
    assert json.loads((out / "config.json").read_text())["run"]["method"] == method
    uses_model = load_methods()[method].uses_model
    assert bool(fake.requests) == uses_model


def test_bench_sends_flags_and_spec_settings(fake, tmp_path):
    fake.set(Reply(body=completion_body(" 1 0 0")))
    out = tmp_path / "bench"
    argv = [
        "bench", "--tasks", "slide", "--methods", "icpi,icpi[temperature=0.5;k=4]",
        "--seeds", "1", "--iterations", "2", "--out", str(out), "--no-progress",
        "--base-url", fake.base_url, "--model", "fake-model", "--max-tokens", "30",
        "--stop", "END", "--top-p", "0.8",
    ]  # fmt: skip
    assert main(argv) == 0
    bodies = completions(fake)
    assert len(bodies) == 2
    by_k = {b["prompt"].count("->") - 1: b for b in bodies}
    assert by_k[20]["temperature"] == 0.0 and by_k[4]["temperature"] == 0.5
    for body in bodies:
        assert (body["max_tokens"], body["stop"], body["top_p"]) == (30, ["END"], 0.8)
        assert body["model"] == "fake-model" and body["seed"] == derive_seed(1, 1, 0)
    spec_dir = out / "runs" / "slide" / "icpi_temperature=0.5_k=4" / "seed-1"
    config = json.loads((spec_dir / "config.json").read_text())
    assert config["llm"]["sampling"]["temperature"] == 0.5
    assert config["llm"]["sampling"]["max_tokens"] == 30 and config["run"]["settings"]["k"] == 4


def test_llm_ask_sends_every_flag(fake, capsys):
    fake.set(Reply(body=chat_body("a", "b")))
    argv = [
        "llm", "ask", "hello", "--base-url", fake.base_url, "--model", "fake-model",
        "--mode", "chat", "--max-tokens", "7", "--stop", "X", "--seed", "5", "-n", "2",
        "--temperature", "0.2", "--top-p", "0.5", "--no-cache",
    ]  # fmt: skip
    assert main(argv) == 0
    (req,) = fake.requests
    body = req["body"]
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert (body["max_tokens"], body["stop"], body["seed"], body["n"]) == (7, ["X"], 5, 2)
    assert (body["temperature"], body["top_p"], body["model"]) == (0.2, 0.5, "fake-model")
    assert "a" in capsys.readouterr().out


def test_lang_sends_its_flags_and_records_every_token_setting(fake, tmp_path):
    fake.set(Reply(body=completion_body("Step 1: 4 * 6 = 24 (left: 24)\nAnswer: 4 * 6")))
    out = tmp_path / "lang"
    argv = [
        "lang", "--task", "game24", "--method", "icrl-preset", "--problems", "1",
        "--rounds", "1", "--out", str(out), "--base-url", fake.base_url, "--model", "fake",
        "--temperature", "0.3", "--top-p", "0.8", "--max-tokens", "123",
        "--judge-tokens", "9", "--helper-tokens", "77",
    ]  # fmt: skip
    assert main(argv) == 0
    policy = completions(fake)[0]
    assert (policy["temperature"], policy["top_p"], policy["max_tokens"]) == (0.3, 0.8, 123)
    assert policy["model"] == "fake"
    run = json.loads((out / "config.json").read_text())["run"]
    assert (run["max_tokens"], run["judge_tokens"], run["helper_tokens"]) == (123, 9, 77)
