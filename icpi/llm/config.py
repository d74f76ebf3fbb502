"""Configuration of the LLM layer: endpoint, model, credentials, retries, cache and sampling.

Values come, in decreasing priority, from command-line flags, a config mapping (YAML), and
the environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``ICPI_LLM_MODEL``). When no base
URL is configured, the embedded llama.cpp server (SmolLM2-135M-Instruct) is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Mode = Literal["chat", "completion"]

#: Environment variable naming the base URL of an OpenAI-compatible endpoint.
ENV_BASE_URL = "OPENAI_BASE_URL"
#: Environment variable holding the API key (never logged, cached or written to run dirs).
ENV_API_KEY = "OPENAI_API_KEY"
#: Environment variable naming the model to request from a configured endpoint.
ENV_MODEL = "ICPI_LLM_MODEL"
#: Environment variable overriding the default cache file.
ENV_CACHE = "ICPI_LLM_CACHE"

#: Model name the embedded server answers to (``--model_alias``).
EMBEDDED_MODEL = "SmolLM2-135M-Instruct"


def default_cache_path() -> Path:
    """Return the default completion cache file.

    Returns:
        ``$ICPI_LLM_CACHE`` if set, else ``$XDG_CACHE_HOME/icpi/llm-cache.sqlite3``
        (``~/.cache`` when ``XDG_CACHE_HOME`` is unset).
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "icpi" / "llm-cache.sqlite3"


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters forwarded to the endpoint; all of them enter the cache key."""

    n: int = 1
    """Number of completions per request (topped up by extra requests if the server
    returns fewer)."""
    temperature: float = 0.0
    """Softmax temperature; 0 is greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_tokens: int = 64
    """Maximum completion tokens per sample."""
    seed: int | None = 0
    """Sampling seed forwarded to the server; ``None`` omits it (then the cache still keys
    on it, so replay stays exact)."""
    stop: tuple[str, ...] = ()
    """Stop sequences (empty: none)."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature must be in [0, 5], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.stop is None:
            object.__setattr__(self, "stop", ())
        elif isinstance(self.stop, str):  # a bare string is one stop sequence
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))

    def replace(self, **changes: Any) -> SamplingParams:
        """Return a copy with some fields changed.

        Args:
            **changes: Field names and their new values.

        Returns:
            The new parameters.
        """
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to query a language model."""

    base_url: str | None = None
    """OpenAI-compatible endpoint, e.g. ``https://api.openai.com/v1`` or
    ``http://localhost:8000/v1`` (vLLM) or ``http://localhost:11434/v1`` (Ollama).
    ``None``: start the embedded llama.cpp server with SmolLM2-135M-Instruct."""
    model: str | None = None
    """Model name sent with each request. ``None``: the embedded model's alias, or the first
    model that a configured endpoint lists."""
    api_key: str | None = field(default=None, repr=False)
    """API key. Kept out of ``repr``, logs, run directories and the cache."""
    mode: Mode = "completion"
    """``completion`` (plain-text prompt, ``/v1/completions``) or ``chat``
    (``/v1/chat/completions``)."""
    timeout_s: float = 60.0
    """Per-request timeout in seconds (connect and read), handed to the SDK."""
    max_retries: int = 2
    """Retries the SDK makes on timeouts, refused connections, 408/409/429 and 5xx."""
    empty_retries: int = 2
    """Extra requests when every returned sample is empty or refused; then an error."""
    cache_path: Path | None = None
    """Completion cache (sqlite3 file); ``None``: :func:`default_cache_path`."""
    use_cache: bool = True
    """Read and write the completion cache."""
    offline: bool = False
    """Replay from the cache only; a miss raises :class:`~icpi.llm.errors.CacheMissError`
    and no HTTP request is ever made."""
    log_path: Path | None = None
    """JSONL file receiving one record per request (tokens, latency, texts); ``None``: only
    in-memory statistics and ``logging``."""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    """Default sampling parameters (overridable per request)."""
    server_startup_s: float = 120.0
    """How long to wait for the embedded server to answer after starting it."""
    server_n_ctx: int = 4096
    """Context length of the embedded server, in tokens."""

    def __post_init__(self) -> None:
        if self.mode not in ("chat", "completion"):
            raise ValueError(f"mode must be 'chat' or 'completion', got {self.mode!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0 or self.empty_retries < 0:
            raise ValueError("max_retries and empty_retries must be >= 0")

    @property
    def embedded(self) -> bool:
        """Whether this configuration uses the embedded server (no base URL)."""
        return self.base_url is None

    def resolved_cache_path(self) -> Path:
        """Return the cache file in use.

        Returns:
            ``cache_path`` or the default cache file.
        """
        return self.cache_path if self.cache_path is not None else default_cache_path()

    def replace(self, **changes: Any) -> LLMConfig:
        """Return a copy with some fields changed.

        Args:
            **changes: Field names and their new values.

        Returns:
            The new configuration.
        """
        return dataclasses.replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        """Return the configuration as plain JSON data, without the API key.

        Returns:
            A dict safe to log and to write into a run directory.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "api_key":
                out["api_key_set"] = bool(self.api_key)
                continue
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, SamplingParams):
                value = dataclasses.asdict(value)
                value["stop"] = list(value["stop"])
            out[f.name] = value
        return out

    @classmethod
    def from_sources(
        cls,
        overrides: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LLMConfig:
        """Build a configuration from flags, a config mapping and the environment.

        Args:
            overrides: Highest priority values (e.g. from flags); ``None`` values are ignored.
            config: Values from a config file; may hold a ``sampling`` sub-mapping.
            env: Environment; ``None`` reads ``os.environ``.

        Returns:
            The resolved configuration.

        Raises:
            ValueError: On unknown keys or invalid values.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        env_map = {"base_url": ENV_BASE_URL, "api_key": ENV_API_KEY, "model": ENV_MODEL}
        for key, var in env_map.items():
            if env.get(var):
                values[key] = env[var]
        sampling: dict[str, Any] = {}
        names = {f.name for f in dataclasses.fields(cls)}
        sampling_names = {f.name for f in dataclasses.fields(SamplingParams)}
        for source in (config or {}, overrides or {}):
            for key, value in source.items():
                if value is None:
                    continue
                if key == "sampling":
                    if isinstance(value, SamplingParams):
                        value = dataclasses.asdict(value)
                    sampling.update({k: v for k, v in value.items() if v is not None})
                elif key in sampling_names:
                    sampling[key] = value
                elif key in names:
                    values[key] = value
                else:
                    raise ValueError(f"unknown LLM config key {key!r}")
        for key in ("cache_path", "log_path"):
            if key in values:
                values[key] = Path(values[key]).expanduser()
        unknown = set(sampling) - sampling_names
        if unknown:
            raise ValueError(f"unknown sampling keys {sorted(unknown)}")
        if values.get("base_url") in ("", "embedded"):
            values["base_url"] = None
        return cls(**values, sampling=SamplingParams(**sampling))


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the LLM flags shared by every command that queries a model.

    Args:
        parser: Parser (or argument group owner) to extend.
    """
    g = parser.add_argument_group("language model")
    g.add_argument(
        "--base-url",
        help=f"OpenAI-compatible endpoint (default: ${ENV_BASE_URL}, else the embedded "
        "SmolLM2-135M server; 'embedded' forces the latter).",
    )
    g.add_argument("--model", help=f"Model name (default: ${ENV_MODEL} or the endpoint's first).")
    g.add_argument("--api-key", help=f"API key (default: ${ENV_API_KEY}); never logged or cached.")
    g.add_argument("--mode", choices=("chat", "completion"), help="Chat or plain completion.")
    g.add_argument("--timeout", dest="timeout_s", type=float, help="Request timeout, seconds.")
    g.add_argument("--max-retries", type=int, help="SDK retries on timeouts, 429 and 5xx.")
    g.add_argument("--cache", dest="cache_path", help="Completion cache file (sqlite3).")
    g.add_argument(
        "--no-cache", dest="use_cache", action="store_const", const=False, help="Bypass the cache."
    )
    g.add_argument(
        "--offline",
        action="store_const",
        const=True,
        help="Replay completions from the cache only; fail on a miss.",
    )
    g.add_argument("--llm-log", dest="log_path", help="JSONL file for request/response records.")
    g.add_argument("--temperature", type=float, help="Sampling temperature.")
    g.add_argument("--top-p", type=float, help="Nucleus sampling mass.")
    g.add_argument("--max-tokens", type=int, help="Maximum completion tokens.")
    g.add_argument("--seed", type=int, help="Sampling seed.")
    g.add_argument("-n", "--n-samples", dest="n", type=int, help="Completions per request.")
    g.add_argument("--stop", action="append", help="Stop sequence (repeatable).")


def config_from_args(
    args: argparse.Namespace, config: Mapping[str, Any] | None = None
) -> LLMConfig:
    """Resolve an :class:`LLMConfig` from parsed flags, a config mapping and the environment.

    Args:
        args: Namespace produced by a parser extended with :func:`add_llm_arguments`.
        config: Lower-priority values, e.g. the ``llm`` section of a YAML config.

    Returns:
        The resolved configuration.
    """
    keys = (
        "base_url", "model", "api_key", "mode", "timeout_s", "max_retries", "cache_path",
        "use_cache", "offline", "log_path", "temperature", "top_p", "max_tokens", "seed", "n",
        "stop",
    )  # fmt: skip
    overrides: dict[str, Any] = {k: getattr(args, k, None) for k in keys}
    stop = overrides.get("stop")
    if stop is not None:
        overrides["stop"] = tuple(stop)
    return LLMConfig.from_sources(overrides=overrides, config=config)
