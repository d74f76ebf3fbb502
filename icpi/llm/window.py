"""The context window an OpenAI-compatible endpoint reports, where it reports one.

vLLM lists each model with ``max_model_len`` in ``GET /v1/models``; OpenRouter and some
proxies give ``context_length`` (or ``context_window``, ``max_context_length``) there.
The OpenAI API, Ollama (whose window is its ``num_ctx``, 2048–4096 tokens by default,
and which cuts longer prompts silently) and llama.cpp's server list none: pass the window
to the run yourself (``icpi lang --context-tokens``).

This is one GET (the standard library's, with the client's timeouts, no retries): a window
that cannot be read is no window (the caller plans with a default and shrinks on a refusal
that names one).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from icpi.core.secrets import redact_url
from icpi.llm.config import LLMConfig

log = logging.getLogger(__name__)

#: Keys of a ``/v1/models`` entry that give the model's context window, in order.
WINDOW_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class EndpointWindow:
    """A context window an endpoint reported."""

    tokens: int
    """The window, tokens."""
    source: str
    """Where it was read (``/v1/models max_model_len of 'model'``)."""


def window_of(models: Any, model: str | None) -> EndpointWindow | None:
    """Read the window of a model from a ``/v1/models`` answer.

    Args:
        models: The parsed JSON answer (``{"data": [{"id": ..., "max_model_len": ...}]}``).
        model: The model asked for (``None``: the first listed).

    Returns:
        The window, or ``None`` when the answer gives none for that model.
    """
    entries = models.get("data") if isinstance(models, dict) else None
    if not isinstance(entries, list):
        return None
    entries = [e for e in entries if isinstance(e, dict)]
    if model is not None:
        entries = [e for e in entries if e.get("id") == model]
    for entry in entries[:1]:
        for key in WINDOW_KEYS:
            value = entry.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return EndpointWindow(value, f"/v1/models {key} of {entry.get('id')!r}")
    return None


def endpoint_context_window(config: LLMConfig) -> EndpointWindow | None:
    """Ask a configured endpoint for its model's context window.

    Args:
        config: The endpoint (``base_url``, ``model``, ``api_key``, timeouts).

    Returns:
        The window, or ``None`` (embedded or offline configuration, no answer, or an
        answer without one).
    """
    if config.base_url is None or config.offline:
        return None
    url = config.base_url.rstrip("/") + "/models"
    loopback = urllib.parse.urlsplit(url).hostname in _LOOPBACK
    # Never send a loopback request through an HTTP(S)_PROXY of the environment.
    opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if loopback else []))
    request = urllib.request.Request(url)
    if config.api_key:
        request.add_header("Authorization", f"Bearer {config.api_key}")
    try:
        with opener.open(request, timeout=config.connect_timeout_s + config.timeout_s) as resp:
            data = json.loads(resp.read())
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, bad JSON
        log.info("no context window from %s: %s", redact_url(url), exc)
        return None
    found = window_of(data, config.model)
    if found is not None:
        log.info("context window of %s: %d tokens (%s)", redact_url(url), found.tokens,
                 found.source)  # fmt: skip
    return found
