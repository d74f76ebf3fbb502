"""The package's scripted OpenAI-compatible server, under the name the tests import."""

from icpi.llm.testing import AUTO, FakeOpenAI, Reply, chat_body, completion_body

__all__ = ["AUTO", "FakeOpenAI", "Reply", "chat_body", "completion_body"]
