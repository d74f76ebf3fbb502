import pytest
from fake_openai import FakeOpenAI

from icpi.llm import LLMClient, LLMConfig


@pytest.fixture
def fake():
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Shrink the client's exponential backoff (0.5 s, 1 s, ...) so retry tests stay fast."""
    import icpi.llm.client as client

    monkeypatch.setattr(client, "_BACKOFF", lambda state: 0.01)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ICPI_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ICPI_LLM_CACHE", str(tmp_path / "default-cache.sqlite3"))


@pytest.fixture
def make_client(fake, tmp_path):
    clients = []

    def make(**kw):
        cfg = {
            "base_url": fake.base_url,
            "model": "fake-model",
            "cache_path": tmp_path / "cache.sqlite3",
            "log_path": tmp_path / "calls.jsonl",
            "timeout_s": 2.0,
            "max_retries": 2,
        }
        cfg.update(kw)
        client = LLMClient(LLMConfig(**cfg))
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
