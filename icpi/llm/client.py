"""One client for every improver, on the ``openai`` SDK.

It sends chat or plain-completion requests to any OpenAI-compatible endpoint (or the
embedded llama.cpp server), forwards ``n``, temperature, top_p, seed, stop and max_tokens,
leans on the SDK for timeouts and bounded retries, re-asks a bounded number of times when
every sample is empty or refused, caches completions by the full request, records every
call with tokens and latency, and in offline mode answers only from the cache.

Example:
    >>> client = LLMClient(LLMConfig(base_url="http://localhost:8000/v1", model="m"))
    >>> client.generate("1 2 3 4", max_tokens=8).texts  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from icpi.llm.cache import CompletionCache, request_key
from icpi.llm.config import EMBEDDED_MODEL, LLMConfig, Mode, SamplingParams
from icpi.llm.errors import CacheMissError, LLMEmptyResponseError, LLMError, LLMUnavailableError
from icpi.llm.records import CallLog, CallRecord
from icpi.llm.server import EmbeddedServer, embedded_endpoint_id, shared_server

if TYPE_CHECKING:  # the SDK is imported on first use: it takes ~1 s to import
    import openai

log = logging.getLogger(__name__)

#: Placeholder key for endpoints that need none (the SDK insists on a non-empty key).
NO_KEY = "sk-no-key-required"
#: Host names served on this machine (no proxy for them).
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: Seed offset between re-asks after an all-empty answer.
_RESEED_STEP = 7919

Messages = Sequence[Mapping[str, str]]
PromptLike = str | Messages


@dataclass(frozen=True)
class LLMResponse:
    """The answer to one call: ``n`` completions plus accounting."""

    texts: list[str]
    """Completions, one per sample (empty string for an empty or refused sample)."""
    finish_reasons: list[str | None] = field(default_factory=list)
    """Finish reason per sample."""
    prompt_tokens: int = 0
    """Prompt tokens (server-reported, summed over HTTP requests)."""
    completion_tokens: int = 0
    """Completion tokens (server-reported, summed over HTTP requests)."""
    latency_s: float = 0.0
    """Wall time of the call, seconds."""
    cached: bool = False
    """Whether the answer came from the cache."""
    key: str = ""
    """Cache key of the request."""
    model: str = ""
    """Model name sent."""


class LLMClient:
    """Query a language model with caching, logging and bounded retries."""

    def __init__(
        self,
        config: LLMConfig | None = None,
        *,
        cache: CompletionCache | None = None,
        call_log: CallLog | None = None,
        server: EmbeddedServer | None = None,
    ) -> None:
        """Create the client; no connection or server start happens before the first call.

        Args:
            config: Endpoint and defaults; ``None`` resolves one from the environment.
            cache: Completion cache to use instead of opening ``config``'s file.
            call_log: Record sink; ``None`` creates one writing to ``config.log_path``.
            server: Embedded server to use instead of the process-wide one.

        Raises:
            LLMError: If offline mode is asked for without a cache.
        """
        self.config = config if config is not None else LLMConfig.from_sources()
        if self.config.offline and not self.config.use_cache:
            raise LLMError("offline mode replays from the cache: it cannot be used with no cache")
        if cache is None and self.config.use_cache:
            cache = CompletionCache(self.config.resolved_cache_path())
        self.cache = cache
        self.log = call_log if call_log is not None else CallLog(self.config.log_path)
        self._server = server
        self._sdk: openai.OpenAI | None = None
        self._model: str | None = self.config.model
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- endpoint
    @property
    def endpoint_id(self) -> str:
        """Endpoint identity used in cache keys (the embedded server's port is left out)."""
        if self.config.base_url is None:
            return embedded_endpoint_id()
        return self.config.base_url.rstrip("/")

    @property
    def model(self) -> str:
        """The model name sent with requests (asks a configured endpoint if unset).

        Raises:
            LLMError: If no model is configured in offline mode or the endpoint lists none.
        """
        with self._lock:
            if self._model is None:
                if self.config.base_url is None:
                    self._model = EMBEDDED_MODEL
                elif self.config.offline:
                    raise LLMError("offline mode needs the model name: pass --model")
                else:
                    self._model = self._discover_model()
            return self._model

    def _discover_model(self) -> str:
        import openai

        sdk = self._sdk_client_locked()
        try:
            models = [m.id for m in sdk.models.list()]
        except openai.OpenAIError as exc:
            raise LLMUnavailableError(
                f"no --model given and listing models at {self.endpoint_id} failed: {exc}"
            ) from exc
        if not models:
            raise LLMError(f"no --model given and {self.endpoint_id} lists no models")
        log.info("using model %r listed by %s", models[0], self.endpoint_id)
        return models[0]

    def _sdk_client_locked(self) -> openai.OpenAI:
        import openai

        if self._sdk is None:
            if self.config.offline:  # never reached: offline answers before any HTTP
                raise LLMError("offline mode makes no HTTP requests")
            if self.config.base_url is None:
                if self._server is None:
                    self._server = shared_server(
                        n_ctx=self.config.server_n_ctx,
                        startup_timeout_s=self.config.server_startup_s,
                    )
                else:
                    self._server.start()
                base_url = self._server.base_url
            else:
                base_url = self.config.base_url
            http_client = None
            if urllib.parse.urlsplit(base_url).hostname in _LOOPBACK:
                # Never route a loopback endpoint through an HTTP(S)_PROXY of the environment.
                http_client = openai.DefaultHttpxClient(trust_env=False)
            self._sdk = openai.OpenAI(
                base_url=base_url,
                api_key=self.config.api_key or NO_KEY,
                timeout=self.config.timeout_s,
                max_retries=self.config.max_retries,
                http_client=http_client,
            )
        return self._sdk

    def _sdk_client(self) -> openai.OpenAI:
        with self._lock:
            return self._sdk_client_locked()

    # ----------------------------------------------------------------- requests
    def chat(self, messages: Messages, **params: Any) -> LLMResponse:
        """Send a chat request.

        Args:
            messages: ``[{"role": ..., "content": ...}, ...]``.
            **params: :class:`~icpi.llm.config.SamplingParams` fields overriding the defaults.

        Returns:
            The response.
        """
        return self.generate(messages, mode="chat", **params)

    def complete(self, prompt: str, **params: Any) -> LLMResponse:
        """Send a plain-completion request.

        Args:
            prompt: The text to continue.
            **params: :class:`~icpi.llm.config.SamplingParams` fields overriding the defaults.

        Returns:
            The response.
        """
        return self.generate(prompt, mode="completion", **params)

    def generate(
        self,
        prompt: PromptLike,
        *,
        mode: Mode | None = None,
        sampling: SamplingParams | None = None,
        **params: Any,
    ) -> LLMResponse:
        """Get ``n`` completions of a prompt, from the cache or the endpoint.

        A string prompt goes to ``/v1/completions`` in completion mode and becomes one user
        message in chat mode; a message list always uses chat.

        Args:
            prompt: Text or chat messages.
            mode: ``chat`` or ``completion``; ``None`` uses the config's mode.
            sampling: Base sampling parameters; ``None`` uses the config's.
            **params: Sampling fields overriding those (``n``, ``temperature``, ``top_p``,
                ``max_tokens``, ``seed``, ``stop``).

        Returns:
            The response, with exactly ``n`` texts.

        Raises:
            CacheMissError: Offline and the request is not cached.
            LLMUnavailableError: The endpoint failed after the SDK's bounded retries.
            LLMEmptyResponseError: Every sample stayed empty or refused after re-asking.
        """
        params_obj = (sampling or self.config.sampling).replace(**params)
        mode = mode or self.config.mode
        messages: list[dict[str, str]] | None = None
        text: str | None = None
        if isinstance(prompt, str):
            if mode == "chat":
                messages = [{"role": "user", "content": prompt}]
            else:
                text = prompt
        else:
            mode = "chat"
            messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
        request: dict[str, Any] = {
            "endpoint": self.endpoint_id,
            "model": self.model,
            "mode": mode,
            "messages": messages,
            "prompt": text,
            "n": params_obj.n,
            "temperature": params_obj.temperature,
            "top_p": params_obj.top_p,
            "max_tokens": params_obj.max_tokens,
            "seed": params_obj.seed,
            "stop": list(params_obj.stop),
        }
        key = request_key(request)
        t0 = time.perf_counter()
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return self._finish(request, key, hit, t0, cached=True, http_requests=0)
        if self.config.offline:
            miss = CacheMissError(
                f"offline: no cached completion for request {key[:16]} (model {request['model']!r}"
                f" at {self.endpoint_id}, mode {mode}) in {self.config.resolved_cache_path()}; "
                "run once without --offline to fill the cache"
            )
            self.log.add_error(self._error_record(request, key, t0, miss))
            raise miss
        try:
            data, http_requests = self._call_live(request, params_obj)
        except LLMError as exc:
            self.log.add_error(self._error_record(request, key, t0, exc))
            raise
        if self.cache is not None:
            self.cache.put(key, request, data)
        return self._finish(request, key, data, t0, cached=False, http_requests=http_requests)

    def _error_record(
        self, request: dict[str, Any], key: str, t0: float, exc: Exception
    ) -> CallRecord:
        return CallRecord(
            key=key,
            endpoint=request["endpoint"],
            model=request["model"],
            mode=request["mode"],
            request={k: v for k, v in request.items() if k not in ("endpoint", "model", "mode")},
            texts=[],
            finish_reasons=[],
            prompt_tokens=0,
            completion_tokens=0,
            latency_s=time.perf_counter() - t0,
            cached=False,
            http_requests=0,
            time=time.time(),
            error=f"{type(exc).__name__}: {exc}",
        )

    def _finish(
        self,
        request: dict[str, Any],
        key: str,
        data: dict[str, Any],
        t0: float,
        *,
        cached: bool,
        http_requests: int,
    ) -> LLMResponse:
        latency = time.perf_counter() - t0
        rec = CallRecord(
            key=key,
            endpoint=request["endpoint"],
            model=request["model"],
            mode=request["mode"],
            request={k: v for k, v in request.items() if k not in ("endpoint", "model", "mode")},
            texts=list(data["texts"]),
            finish_reasons=list(data["finish_reasons"]),
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]),
            latency_s=latency,
            cached=cached,
            http_requests=http_requests,
            request_ids=list(data.get("request_ids", [])) if not cached else [],
            time=time.time(),
        )
        self.log.add(rec)
        log.debug(
            "llm %s %s: %d samples, %d+%d tokens, %.3f s%s",
            rec.mode,
            key[:12],
            len(rec.texts),
            rec.prompt_tokens,
            rec.completion_tokens,
            latency,
            " (cache)" if cached else "",
        )
        return LLMResponse(
            texts=rec.texts,
            finish_reasons=rec.finish_reasons,
            prompt_tokens=rec.prompt_tokens,
            completion_tokens=rec.completion_tokens,
            latency_s=latency,
            cached=cached,
            key=key,
            model=rec.model,
        )

    def _call_live(
        self, request: dict[str, Any], params: SamplingParams
    ) -> tuple[dict[str, Any], int]:
        """Query the endpoint until ``n`` samples are in, re-asking on all-empty answers."""
        texts: list[str] = []
        reasons: list[str | None] = []
        request_ids: list[str] = []
        usage = [0, 0]
        http_requests = 0
        empty_rounds = 0
        seed = params.seed
        # Servers that ignore ``n`` (llama.cpp) get topped up with extra requests; bounded.
        max_requests = params.n + self.config.empty_retries + 1
        while len(texts) < params.n:
            if http_requests >= max_requests:
                raise LLMEmptyResponseError(
                    f"{self.endpoint_id} returned {len(texts)} of {params.n} samples after "
                    f"{http_requests} requests"
                )
            want = params.n - len(texts)
            batch, batch_reasons, rid, p_tok, c_tok = self._one_request(request, want, seed)
            http_requests += 1
            usage[0] += p_tok
            usage[1] += c_tok
            if rid:
                request_ids.append(rid)
            if batch and all(not t.strip() for t in batch):
                empty_rounds += 1
                log.warning(
                    "%s returned only empty or refused samples (finish %s); re-ask %d/%d",
                    self.endpoint_id,
                    batch_reasons,
                    empty_rounds,
                    self.config.empty_retries,
                )
                if empty_rounds > self.config.empty_retries:
                    raise LLMEmptyResponseError(
                        f"{self.endpoint_id} (model {request['model']!r}) returned only empty or "
                        f"refused samples {empty_rounds} times (finish reasons {batch_reasons})"
                    )
            else:
                texts.extend(batch[:want])
                reasons.extend(batch_reasons[:want])
            if seed is not None:
                seed += _RESEED_STEP
        data = {
            "texts": texts,
            "finish_reasons": reasons,
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "request_ids": request_ids,
        }
        return data, http_requests

    def _one_request(
        self, request: dict[str, Any], n: int, seed: int | None
    ) -> tuple[list[str], list[str | None], str | None, int, int]:
        import openai

        sdk = self._sdk_client()
        kwargs: dict[str, Any] = {
            "model": request["model"],
            "n": n,
            "temperature": request["temperature"],
            "top_p": request["top_p"],
            "max_tokens": request["max_tokens"],
        }
        if seed is not None:
            kwargs["seed"] = seed
        if request["stop"]:
            kwargs["stop"] = request["stop"]
        texts: list[str] = []
        reasons: list[str | None] = []
        try:
            if request["mode"] == "chat":
                chat = sdk.chat.completions.create(messages=request["messages"], **kwargs)
                for c in sorted(chat.choices, key=lambda c: c.index):
                    msg = c.message
                    refused = bool(getattr(msg, "refusal", None))
                    content = getattr(msg, "content", None) if msg is not None else None
                    texts.append("" if refused else (content or ""))
                    reasons.append("refusal" if refused else c.finish_reason)
                rid, usage = chat._request_id, chat.usage
            else:
                comp = sdk.completions.create(prompt=request["prompt"], **kwargs)
                for cc in sorted(comp.choices, key=lambda c: c.index):
                    texts.append(cc.text or "")
                    reasons.append(cc.finish_reason)
                rid, usage = comp._request_id, comp.usage
        except openai.APITimeoutError as exc:
            raise LLMUnavailableError(
                f"{self.endpoint_id}: no answer within {self.config.timeout_s:g} s, "
                f"{self.config.max_retries + 1} attempts"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailableError(
                f"{self.endpoint_id}: connection failed ({exc}), "
                f"{self.config.max_retries + 1} attempts; is the server running?"
            ) from exc
        except openai.RateLimitError as exc:
            raise LLMUnavailableError(
                f"{self.endpoint_id}: rate limited (HTTP 429, request id {exc.request_id}) after "
                f"{self.config.max_retries + 1} attempts"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailableError(
                f"{self.endpoint_id}: HTTP {exc.status_code} (request id {exc.request_id}) "
                f"after up to {self.config.max_retries + 1} attempts: {exc.message}"
            ) from exc
        except (openai.OpenAIError, ValueError) as exc:
            raise LLMUnavailableError(f"{self.endpoint_id}: malformed answer: {exc}") from exc
        p_tok = int(getattr(usage, "prompt_tokens", 0) or 0)
        c_tok = int(getattr(usage, "completion_tokens", 0) or 0)
        for r in reasons:
            if r == "content_filter":
                log.warning("%s filtered a sample (request id %s)", self.endpoint_id, rid)
        texts = ["" if r == "content_filter" else t for t, r in zip(texts, reasons, strict=True)]
        return texts, reasons, rid, p_tok, c_tok

    @property
    def stats(self) -> dict[str, Any]:
        """Running totals of calls, cache hits, HTTP requests, tokens and latency."""
        return self.log.stats.to_dict()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client and the cache (the shared embedded server keeps running)."""
        with self._lock:
            if self._sdk is not None:
                self._sdk.close()
                self._sdk = None
        if self.cache is not None:
            self.cache.close()


if TYPE_CHECKING:  # static check: the client is a sampler backend of the core
    from icpi.core.samplers import TextGenerator

    def _is_text_generator(client: LLMClient) -> TextGenerator:
        return client
