"""Configuration of the LLM layer: endpoint, model, credentials, retries, cache and sampling.

Values come, in decreasing priority, from command-line flags, a config file (``--config``,
its ``llm`` section), a method's own defaults (e.g. ICPI's short answers) and the
environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``ICPI_LLM_MODEL``), merged and
validated by :func:`icpi.config.load`. When no base URL is configured, the embedded
llama.cpp server (SmolLM2-135M-Instruct) is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from icpi.config import STRICT, add_flags, flag_layer, load
from icpi.core.secrets import redact_url

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

    __pydantic_config__ = STRICT

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


#: Settings that do not change what a run computes: they are left out of ``config.json``
#: (so a run resumes with another timeout, offline, or with another cache file) and
#: recorded per start in ``sessions.jsonl``.
VOLATILE_KEYS = (
    "api_key",
    "timeout_s",
    "connect_timeout_s",
    "call_timeout_s",
    "max_retries",
    "outage_s",
    "empty_retries",
    "cache_path",
    "use_cache",
    "offline",
    "log_path",
    "server_startup_s",
)


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to query a language model."""

    __pydantic_config__ = STRICT

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
    """Read timeout of one HTTP request to an endpoint, seconds (the answer must start
    within it). The embedded server has none: it is waited for while it runs, so its
    results do not depend on the machine's load."""
    connect_timeout_s: float = 5.0
    """Connect timeout of one HTTP request, seconds."""
    max_retries: int = 3
    """Retries of one call on transient failures (timeouts, refused or reset connections,
    HTTP 408/409/429/5xx, malformed bodies), with exponential backoff and jitter (a 429's
    Retry-After is honoured); then the call fails and the loop falls back."""
    call_timeout_s: float = 150.0
    """Longest time one call may take, all its retries included, seconds; then it fails
    (and the loop falls back). With the defaults a server that accepts the connection and
    never answers holds a call for 150 s (two read timeouts and the backoff between)."""
    outage_s: float = 120.0
    """An endpoint failing every call for this long stops the run (exit 3, resumable)."""
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
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeout_s and connect_timeout_s must be > 0")
        if self.outage_s <= 0 or self.call_timeout_s <= 0:
            raise ValueError("outage_s and call_timeout_s must be > 0")
        if self.max_retries < 0 or self.empty_retries < 0:
            raise ValueError("max_retries and empty_retries must be >= 0")
        if self.offline and not self.use_cache:
            raise ValueError(
                "offline mode replays from the cache: it cannot be used with no cache (drop"
                " --no-cache or --offline)"
            )
        if self.offline and self.base_url is not None and self.model is None:
            raise ValueError(
                "offline mode replays from the cache, which is keyed by the model name: pass"
                " --model (the one the cached run used)"
            )
        for name in ("cache_path", "log_path"):  # "~/cache.db" from a flag or a file
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())

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
            A dict safe to log (URLs stripped of credentials).
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
            elif isinstance(value, str) and f.name == "base_url":
                value = redact_url(value)
            out[f.name] = value
        return out

    def recorded(self, per_call: Iterable[str] = ()) -> dict[str, Any]:
        """What ``config.json`` records: the settings that determine the requests.

        Args:
            per_call: Sampling fields set per call by the method (e.g. ``n`` and ``seed``
                derived from the run seed), recorded as such instead of their defaults.

        Returns:
            :meth:`public_dict` without :data:`VOLATILE_KEYS`.
        """
        out = {k: v for k, v in self.public_dict().items() if k not in VOLATILE_KEYS}
        out.pop("api_key_set", None)
        per_call = list(per_call)
        for name in per_call:
            out["sampling"].pop(name, None)
        if per_call:
            out["sampling"]["per_call"] = sorted(per_call)
        return out

    def session(self) -> dict[str, Any]:
        """The volatile settings of this start (for ``sessions.jsonl``).

        Returns:
            :data:`VOLATILE_KEYS` of :meth:`public_dict` (``api_key_set``, never the key).
        """
        public = self.public_dict()
        return {k: public[k] for k in (*VOLATILE_KEYS, "api_key_set") if k in public}

    @classmethod
    def from_sources(
        cls,
        overrides: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> LLMConfig:
        """Build a configuration from flags, a config mapping, defaults and the environment.

        Every layer may give sampling fields flat (``temperature``) or under ``sampling``.

        Args:
            overrides: Highest priority values (e.g. from flags); ``None`` values are ignored.
            config: Values from a config file (its ``llm`` section).
            env: Environment; ``None`` reads ``os.environ``.
            defaults: A method's own defaults (below the config file, above the environment).

        Returns:
            The resolved configuration.

        Raises:
            ConfigError: On unknown keys or invalid values (a ``ValueError``).
        """
        env = os.environ if env is None else env
        env_layer = {
            key: env[var]
            for key, var in (
                ("base_url", ENV_BASE_URL),
                ("api_key", ENV_API_KEY),
                ("model", ENV_MODEL),
            )
            if env.get(var)
        }
        layers = [_nested(layer) for layer in (env_layer, defaults, config, overrides)]
        cfg = load(cls, *layers, where="the LLM settings")
        if cfg.base_url in ("", "embedded"):
            cfg = dataclasses.replace(cfg, base_url=None)
        return cfg


_SAMPLING_FIELDS = frozenset(f.name for f in dataclasses.fields(SamplingParams))


def _nested(layer: Mapping[str, Any] | None) -> dict[str, Any]:
    """Move flat sampling keys of a layer under ``sampling``; drop ``None`` values."""
    out: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    for key, value in (layer or {}).items():
        if value is None:
            continue
        if key in _SAMPLING_FIELDS:
            sampling[key] = value
        elif key == "sampling":
            if isinstance(value, SamplingParams):
                value = dataclasses.asdict(value)
            sampling.update({k: v for k, v in dict(value).items() if v is not None})
        else:
            out[key] = value
    if sampling:
        out["sampling"] = sampling
    return out


#: Flag names of the LLM settings that differ from their field names.
_FLAG_NAMES = {
    "timeout_s": "timeout",
    "connect_timeout_s": "connect-timeout",
    "outage_s": "outage",
    "call_timeout_s": "call-timeout",
    "cache_path": "cache",
    "log_path": "llm-log",
    "server_startup_s": "server-startup",
    "sampling.n": "n-samples",
}


def add_llm_arguments(
    parser: argparse.ArgumentParser, skip: Iterable[str] = ()
) -> argparse._ArgumentGroup:
    """Register the LLM flags shared by every command that queries a model.

    One flag per field of :class:`LLMConfig` (help from the field's docstring), read back
    by :func:`config_from_args`.

    Args:
        parser: The verb's parser.
        skip: Fields the verb sets itself (dotted, e.g. ``sampling.seed``): no flag.

    Returns:
        The argument group.
    """
    g = parser.add_argument_group("language model")
    skip = {*skip, "use_cache", "server_n_ctx"}
    add_flags(
        g,
        LLMConfig,
        path=("llm",),
        skip=skip,
        rename=_FLAG_NAMES,
        short={"sampling.n": "-n"},
    )
    g.add_argument(
        "--no-cache",
        dest="cfg:llm.use_cache",
        action="store_false",
        default=argparse.SUPPRESS,
        help="Bypass the completion cache (neither read nor write it).",
    )
    return g


def config_from_args(
    args: argparse.Namespace,
    config: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> LLMConfig:
    """Resolve an :class:`LLMConfig` from parsed flags, a config mapping and the environment.

    Args:
        args: Namespace produced by a parser extended with :func:`add_llm_arguments`.
        config: Lower-priority values, e.g. the ``llm`` section of a config file.
        defaults: A method's own defaults (below ``config``).

    Returns:
        The resolved configuration.
    """
    return LLMConfig.from_sources(
        overrides=flag_layer(args).get("llm"), config=config, defaults=defaults
    )
