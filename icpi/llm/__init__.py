"""The LLM layer: one OpenAI-SDK client, an embedded offline model, a cache and call logs.

Main entry points:

- :class:`LLMConfig` / :class:`SamplingParams`: where and how to query (flags, config, env).
- :class:`LLMClient`: ``generate(prompt, n=..., temperature=..., seed=...)`` returning
  :class:`LLMResponse` (texts, tokens, latency, cached).
- :class:`EmbeddedServer` / :func:`shared_server`: llama.cpp serving SmolLM2-135M-Instruct.

Choosing the model (flags > config file > environment)::

    icpi llm ask "1 2 3 ->"                                   # embedded SmolLM2-135M
    OPENAI_API_KEY=sk-... icpi llm ask "..." --base-url https://api.openai.com/v1 \
        --model gpt-4o --mode chat                              # hosted
    icpi llm ask "..." --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B  # vLLM
    icpi llm ask "..." --base-url http://localhost:11434/v1 --model llama3.1        # Ollama
    export OPENAI_BASE_URL=http://localhost:8080/v1   # any OpenAI-compatible server
    icpi llm ask "..." --offline                      # replay from the cache only
"""

from icpi.llm.cache import CompletionCache, request_key
from icpi.llm.client import LLMClient, LLMResponse
from icpi.llm.config import LLMConfig, SamplingParams, add_llm_arguments, config_from_args
from icpi.llm.errors import (
    MODEL_ERRORS,
    CacheMissError,
    LLMAuthError,
    LLMBadRequestError,
    LLMEmptyResponseError,
    LLMEndpointDownError,
    LLMError,
    LLMUnavailableError,
    MissingDependencyError,
    NoModelError,
    ServerStartError,
)
from icpi.llm.records import CallLog, CallRecord, CallStats
from icpi.llm.server import EmbeddedServer, shared_server, stop_shared_server

__all__ = [
    "MODEL_ERRORS",
    "CacheMissError",
    "CallLog",
    "CallRecord",
    "CallStats",
    "CompletionCache",
    "EmbeddedServer",
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMClient",
    "LLMConfig",
    "LLMEmptyResponseError",
    "LLMEndpointDownError",
    "LLMError",
    "LLMResponse",
    "LLMUnavailableError",
    "MissingDependencyError",
    "NoModelError",
    "SamplingParams",
    "ServerStartError",
    "add_llm_arguments",
    "config_from_args",
    "request_key",
    "shared_server",
    "stop_shared_server",
]
