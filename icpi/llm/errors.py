"""Exceptions of the LLM layer. Every failure ends in one of these, never in a hang."""

from __future__ import annotations


class LLMError(RuntimeError):
    """Base class of every error raised by :mod:`icpi.llm`."""


class LLMUnavailableError(LLMError):
    """The endpoint did not answer usefully after the bounded retries.

    Timeouts, refused connections, rate limits, 5xx and other HTTP errors end here.
    """


class LLMEmptyResponseError(LLMError):
    """Every sample was empty or refused, also after the bounded re-asks."""


class CacheMissError(LLMError):
    """Offline mode found no cached completion for a request."""


class MissingDependencyError(LLMError, ImportError):
    """An optional dependency (the ``llm`` extra) is not installed."""


class ServerStartError(LLMError):
    """The embedded llama.cpp server did not start or did not answer in time."""
