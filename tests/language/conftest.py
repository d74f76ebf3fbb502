import pytest

from icpi.language.tasks import Problem
from icpi.llm.testing import FakeOpenAI


@pytest.fixture(autouse=True)
def no_llm_env(monkeypatch, tmp_path):
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ICPI_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ICPI_LLM_CACHE", str(tmp_path / "default-cache.sqlite3"))


@pytest.fixture
def puzzle():
    return Problem(index=0, id="24:3 4 5 7", data={"numbers": [3, 4, 5, 7], "solvable": True})


@pytest.fixture
def fake():
    """The scripted OpenAI-compatible server (closed after the test)."""
    server = FakeOpenAI()
    yield server
    server.close()
