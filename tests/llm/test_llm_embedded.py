"""End-to-end tests against the real embedded llama.cpp server (SmolLM2-135M-Instruct).

One server is started for the whole session and shared by every test (it is the
process-wide server that clients without an endpoint use). Prompts are short and
completions capped at a few tokens to keep the whole file within a couple of minutes on
two cores.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("llama_cpp", reason="needs the llm extra: pip install 'icpi[llm]'")

from icpi.core import Budget, ExperienceBuffer, LLMSampler
from icpi.core.toy import ToyLinearTask, make_toy_improver
from icpi.llm import LLMClient, LLMConfig, shared_server, stop_shared_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def embedded():
    srv = shared_server(n_ctx=1024)
    yield srv
    stop_shared_server()


@pytest.fixture
def client_factory(embedded, tmp_path):
    made = []

    def make(**kw):
        cfg = {"cache_path": tmp_path / "cache.sqlite3", "log_path": tmp_path / "calls.jsonl"}
        cfg.update(kw)
        c = LLMClient(LLMConfig(**cfg))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_completion_and_chat_through_openai_sdk(client_factory, embedded):
    client = client_factory()
    comp = client.complete("1, 2, 3, 4,", max_tokens=6, stop=["\n"], seed=1)
    assert len(comp.texts) == 1 and comp.texts[0].strip()
    assert comp.prompt_tokens > 0 and comp.completion_tokens > 0 and comp.latency_s > 0
    chat = client.chat(
        [{"role": "user", "content": "Name one colour."}], max_tokens=8, temperature=0.7, seed=2
    )
    assert chat.texts[0].strip() and chat.completion_tokens <= 8
    assert client._server is embedded  # the shared server was reused, not restarted
    stats = client.stats
    assert stats["calls"] == 2 and stats["http_requests"] == 2 and stats["prompt_tokens"] > 0


def test_n_samples_from_llama_cpp(client_factory):
    resp = client_factory().complete("Colours: red, blue,", n=2, max_tokens=4, temperature=1.0)
    assert len(resp.texts) == 2


def test_toy_loop_live_then_offline_identical(client_factory, tmp_path, monkeypatch):
    task = ToyLinearTask.sample(0)
    params = {"temperature": 0.3, "max_tokens": 12, "stop": ["\n"]}

    def run(client, name):
        loop = make_toy_improver(
            task, LLMSampler(client, **params), k=5, buffer=ExperienceBuffer(tmp_path / name)
        )
        return loop.run(Budget(max_iterations=4))

    live_client = client_factory()
    live = run(live_client, "live.jsonl")
    assert len(live.attempts) == 4
    assert live_client.stats["http_requests"] >= 3
    assert all(a.llm["calls"] >= 1 for a in live.attempts[1:])

    import httpx2

    def no_http(*args, **kwargs):
        raise AssertionError("offline replay made an HTTP request")

    monkeypatch.setattr(httpx2.Client, "send", no_http)
    offline_client = client_factory(offline=True)
    replay = run(offline_client, "replay.jsonl")
    assert offline_client._sdk is None
    assert offline_client.stats["http_requests"] == 0
    assert offline_client.stats["cache_hits"] == offline_client.stats["calls"] > 0
    for a, b in zip(live.attempts, replay.attempts, strict=True):
        assert (a.action, a.reward, a.samples, a.prompt) == (
            b.action,
            b.reward,
            b.samples,
            b.prompt,
        )
    assert all(a.llm["cached"] for a in replay.attempts[1:])


def test_cli_serve_prints_base_url_and_stops(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "icpi.cli.main", "llm", "serve", "--n-ctx", "256"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with urllib.request.urlopen(f"{url}/models", timeout=10) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        time.sleep(0.2)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/models", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_dies_with_a_killed_parent():
    code = (
        "from icpi.llm import EmbeddedServer\n"
        "s = EmbeddedServer(n_ctx=256)\n"
        "print(s.start(), flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        with urllib.request.urlopen(f"{url}/models", timeout=10) as resp:
            assert resp.status == 200
        proc.kill()  # no atexit: only the parent-death signal can stop the server
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).close()
            except OSError:
                break
            time.sleep(0.2)
        else:
            pytest.fail("embedded server outlived its killed parent")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGILL, signal.SIGSEGV], ids=["SIGILL", "SIGSEGV"])
def test_a_server_that_dies_mid_run_is_named_with_its_cause(sig, tmp_path):
    # A llama.cpp wheel built with -march=native on another CPU dies of SIGILL or SIGSEGV on
    # the first completion: the user must read that, not four "connection failed" retries.
    from icpi.llm import EmbeddedServer, LLMUnavailableError

    with EmbeddedServer(n_ctx=256) as server:
        cfg = LLMConfig(use_cache=False, log_path=tmp_path / "calls.jsonl", max_retries=1)
        client = LLMClient(cfg, server=server)
        assert client.complete("1, 2, 3,", max_tokens=2).texts
        os.kill(server._proc.pid, sig)
        server._proc.wait(timeout=10)
        with pytest.raises(LLMUnavailableError, match=rf"killed by {sig.name}.*GGML_NATIVE=OFF"):
            client.complete("4, 5, 6,", max_tokens=2)
        client.close()
