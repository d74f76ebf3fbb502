"""End to end with the embedded model (SmolLM2-135M-Instruct): a live run, then replays.

Kept small (1–2 puzzles × 1–2 rounds, short completions) so that the file runs in a couple of
minutes on two cores; the 135M model is not expected to solve anything.
"""

import json

import pytest

pytest.importorskip("llama_cpp", reason="needs the llm extra: pip install 'icpi[llm]'")

from icpi.cli.main import main
from icpi.language import lang_config, run_language
from icpi.llm import LLMConfig, shared_server, stop_shared_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded():
    srv = shared_server(n_ctx=2048)
    yield srv
    stop_shared_server()


def records(path):
    return [json.loads(x) for x in (path / "records.jsonl").read_text().splitlines()]


def test_icrl_live_then_offline_replay(embedded, tmp_path):
    # The paper's setting on the standard split: the model is its own judge.
    cache = tmp_path / "cache.sqlite3"
    cfg = lang_config(
        task="game24", method="icrl-preset", problems=1, rounds=2, max_tokens=32, judge_tokens=16
    )
    llm = LLMConfig(cache_path=cache, server_n_ctx=2048)
    live = run_language(cfg, tmp_path / "live", llm=llm)
    assert live["problems"] == 1 and len(live["success_rate"]) == 2
    assert live["context_budget"] == 2048 - 32 - 64
    assert all(t > 0 for t in live["tokens_per_round"])
    calls = [json.loads(c) for c in (tmp_path / "live" / "llm_calls.jsonl").open()]
    policy = [c for c in calls if c["request"]["max_tokens"] == 32]
    assert {c["request"]["max_tokens"] for c in calls} == {32, 16}  # policy and judge
    assert len(policy) == 2 and all(c["model"] for c in calls)
    assert len(policy[1]["request"]["prompt"]) > len(policy[0]["request"]["prompt"])  # grows
    recs = records(tmp_path / "live")
    assert [(r["problem"], r["round"]) for r in recs] == [(0, 0), (0, 1)]
    assert all(r["source"] in ("model", "fallback") for r in recs)
    # Offline replay through the CLI: same requests, answered from the cache only.
    code = main(
        ["lang", "--task", "game24", "--method", "icrl-preset", "--problems", "1",
         "--rounds", "2", "--max-tokens", "32", "--judge-tokens", "16",
         "--out", str(tmp_path / "replay"),
         "--cache", str(cache), "--offline", "--context-tokens", str(2048 - 32 - 64)]
    )  # fmt: skip
    assert code == 0
    strip = lambda rs: [(r["response"], r["reward"], r["success"]) for r in rs]  # noqa: E731
    assert strip(records(tmp_path / "replay")) == strip(recs)
    replay_calls = [json.loads(c) for c in (tmp_path / "replay" / "llm_calls.jsonl").open()]
    assert len(replay_calls) == len(calls) and all(c["cached"] for c in replay_calls)


def test_me_icpo_pipeline_runs(embedded, tmp_path):
    cfg = lang_config(
        method="me-icpo", problems=1, rounds=1, k=2, entropy_k=2, final_k=2, max_tokens=48,
        helper_tokens=24, judge_tokens=16,
    )  # fmt: skip
    llm = LLMConfig(cache_path=tmp_path / "c.db", server_n_ctx=2048)
    summary = run_language(cfg, tmp_path / "me", llm=llm)
    assert summary["final_k"] == 2 and 0.0 <= summary["mean_at_k"] <= 1.0
    rec = records(tmp_path / "me")[0]
    assert rec["source"] in ("model", "invalid") and rec["usage"]["calls"] >= 1
    final = json.loads((tmp_path / "me" / "attempts" / "000.final.json").read_text())
    assert len(final["answers"]) == 2
