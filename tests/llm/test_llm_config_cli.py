import argparse
import importlib.util
import json
import os
from pathlib import Path

import pytest
from fake_openai import Reply, completion_body

from icpi.cli.main import main
from icpi.llm import LLMConfig, MissingDependencyError, SamplingParams
from icpi.llm import server as server_mod
from icpi.llm.config import add_llm_arguments, config_from_args


def test_precedence_flags_over_config_over_env():
    env = {"OPENAI_BASE_URL": "http://env/v1", "OPENAI_API_KEY": "k-env", "ICPI_LLM_MODEL": "m"}
    cfg = LLMConfig.from_sources(env=env)
    assert (cfg.base_url, cfg.api_key, cfg.model) == ("http://env/v1", "k-env", "m")
    cfg = LLMConfig.from_sources(
        config={"base_url": "http://cfg/v1", "sampling": {"temperature": 0.6}, "top_p": 0.9},
        overrides={"model": "flag-model", "temperature": None, "max_tokens": 7},
        env=env,
    )
    assert (cfg.base_url, cfg.model, cfg.api_key) == ("http://cfg/v1", "flag-model", "k-env")
    assert cfg.sampling == SamplingParams(temperature=0.6, top_p=0.9, max_tokens=7)
    assert LLMConfig.from_sources(overrides={"base_url": "embedded"}, env=env).embedded
    with pytest.raises(ValueError, match="unknown"):
        LLMConfig.from_sources(config={"nope": 1}, env={})


def test_flags_roundtrip(tmp_path):
    parser = argparse.ArgumentParser()
    add_llm_arguments(parser)
    args = parser.parse_args(
        ["--base-url", "http://x/v1", "--model", "m", "--mode", "chat", "--stop", "\n",
         "--stop", "END", "-n", "4", "--seed", "3", "--offline", "--cache", str(tmp_path / "c.db")]
    )  # fmt: skip
    cfg = config_from_args(args, config={"timeout_s": 5.0})
    assert cfg.mode == "chat" and cfg.offline and cfg.timeout_s == 5.0
    assert cfg.sampling.stop == ("\n", "END") and cfg.sampling.n == 4 and cfg.sampling.seed == 3
    assert cfg.resolved_cache_path() == tmp_path / "c.db"
    json.dumps(cfg.public_dict())


def test_validation():
    with pytest.raises(ValueError):
        SamplingParams(n=0)
    with pytest.raises(ValueError):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError):
        LLMConfig(mode="edit")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LLMConfig(timeout_s=0)
    assert SamplingParams(stop="\n").stop == ("\n",)
    assert SamplingParams(stop=None).stop == ()  # type: ignore[arg-type]


def test_default_cache_path(monkeypatch, tmp_path):
    monkeypatch.delenv("ICPI_LLM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert LLMConfig().resolved_cache_path() == tmp_path / "icpi" / "llm-cache.sqlite3"


def test_missing_llama_cpp_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name)
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'icpi\[llm\]'"):
        server_mod.EmbeddedServer().start()


def test_missing_model_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(server_mod, "MODEL_PACKAGE", "no_such_model_pkg")
    with pytest.raises(MissingDependencyError, match=r"pip install 'icpi\[llm\]'"):
        server_mod.find_model_file()


def test_server_command_is_loopback():
    srv = server_mod.EmbeddedServer(Path("m.gguf"), n_ctx=512, n_threads=2)
    cmd = srv.command(Path("m.gguf"), 1234)
    # llama_cpp.server, under a wrapper that ends it when this process is gone
    assert cmd[1:4] == ["-m", "icpi.llm._child", str(os.getpid())]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--port") + 1] == "1234"
    assert cmd[cmd.index("--n_ctx") + 1] == "512"


def test_server_that_dies_is_reported(monkeypatch, tmp_path):
    fake_model = tmp_path / "broken.gguf"
    fake_model.write_bytes(b"not a gguf")
    srv = server_mod.EmbeddedServer(fake_model, startup_timeout_s=20)
    monkeypatch.setattr(server_mod, "require_server_dependencies", lambda: None)
    monkeypatch.setattr(
        srv, "command", lambda model, port: ["python3", "-c", "import sys; sys.exit(3)"]
    )
    with pytest.raises(server_mod.ServerStartError, match="exited with code 3"):
        srv.start()
    assert not srv.running


def test_cli_ask_live_then_offline(fake, tmp_path, capsys):
    fake.set(Reply(body=completion_body(" 0.5 0.5", prompt_tokens=5, completion_tokens=2)))
    common = ["llm", "ask", "1 2 ->", "--base-url", fake.base_url, "--model", "m",
              "--cache", str(tmp_path / "c.db"), "--max-tokens", "4", "--json"]  # fmt: skip
    assert main(common) == 0
    live = json.loads(capsys.readouterr().out)
    assert live["texts"] == [" 0.5 0.5"] and not live["cached"]
    fake.set(Reply(status=500, body={}))
    assert main([*common, "--offline"]) == 0
    replay = json.loads(capsys.readouterr().out)
    assert replay["cached"] and replay["texts"] == live["texts"]
    assert fake.requests == []
    assert main([*common[:2], "other prompt", *common[3:], "--offline"]) == 1


def test_cli_ask_reports_unreachable_endpoint(tmp_path):
    port = server_mod.free_port()
    args = ["llm", "ask", "hi", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m",
            "--cache", str(tmp_path / "c.db"), "--max-retries", "0", "--timeout", "1"]  # fmt: skip
    assert main(args) == 1


def test_cache_and_log_paths_expand_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = LLMConfig(cache_path="~/c.db", log_path="~/calls.jsonl")
    assert cfg.cache_path == tmp_path / "c.db" and cfg.log_path == tmp_path / "calls.jsonl"
    assert cfg.replace(log_path="~/x.jsonl").log_path == tmp_path / "x.jsonl"
