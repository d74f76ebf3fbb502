"""Same seed, same records (#21 item 7): two ``icpi lang`` processes on the embedded model.

Each process starts its own llama.cpp server and writes its own empty cache, so nothing is
replayed: the records match because every completion is a function of its request.
"""

import json
import os
import subprocess
import sys

import pytest

ARGV = [
    "lang", "--task", "game24", "--method", "icrl-preset", "--problems", "1", "--rounds", "2",
    "--max-tokens", "32", "--judge-tokens", "12", "--seed", "3",
]  # fmt: skip


def run(tmp_path, name):
    pytest.importorskip("llama_cpp", reason="needs the llm extra: pip install 'icpi[llm]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ICPI_LLM"))}
    out = tmp_path / name
    cmd = [sys.executable, "-m", "icpi.cli.main", "--log-level", "WARNING", *ARGV,
           "--cache", str(tmp_path / f"{name}.sqlite3"), "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, timeout=900, capture_output=True)
    calls = [json.loads(x) for x in (out / "llm_calls.jsonl").open()]
    records = [json.loads(x) for x in (out / "records.jsonl").open()]
    return records, calls


@pytest.mark.slow
def test_two_processes_with_the_same_seed_give_identical_records(tmp_path):
    a, calls_a = run(tmp_path, "a")
    b, calls_b = run(tmp_path, "b")
    assert not any(c["cached"] for c in calls_a + calls_b)  # every answer came from a server
    assert [c["texts"] for c in calls_a] == [c["texts"] for c in calls_b]
    assert a == b and len(a) == 2


class _LocalServer:
    """Stands in for the embedded server: the scripted endpoint, as if started here."""

    def __init__(self, fake):
        self.base_url = fake.base_url

    def start(self):
        return self.base_url

    def exit_report(self):
        return None


def test_the_embedded_server_is_waited_for_a_remote_endpoint_is_not(tmp_path):
    # Under load, an embedded answer came after the read timeout: the retry queued behind
    # the request the server was still computing and, past the call's budget, the round
    # fell back, so two runs with one seed differed. A remote endpoint keeps its timeouts.
    from icpi.llm import LLMClient, LLMConfig, LLMUnavailableError
    from icpi.llm.testing import FakeOpenAI, Reply, completion_body

    fake = FakeOpenAI()
    try:
        fake.set(Reply(body=completion_body("late but right"), delay_s=1.5))
        slow = {"timeout_s": 0.3, "call_timeout_s": 0.6, "max_retries": 1, "use_cache": False}
        embedded = LLMClient(LLMConfig(**slow), server=_LocalServer(fake))
        assert embedded.complete("p", seed=1).texts == ["late but right"]
        assert len(fake.requests) == 1  # one request, no retry behind it
        remote = LLMClient(LLMConfig(base_url=fake.base_url, model="m", **slow))
        with pytest.raises(LLMUnavailableError, match="read timeout"):
            remote.complete("p", seed=1)
    finally:
        fake.close()
