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

import contextlib
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from icpi.core.secrets import install_log_redaction, redact_text, redact_url
from icpi.llm.cache import CompletionCache, request_key
from icpi.llm.config import EMBEDDED_MODEL, LLMConfig, Mode, SamplingParams
from icpi.llm.errors import (
    CacheMissError,
    LLMAuthError,
    LLMBadRequestError,
    LLMEmptyResponseError,
    LLMEndpointDownError,
    LLMError,
    LLMUnavailableError,
    NoModelError,
)
from icpi.llm.records import CallLog, CallRecord
from icpi.llm.server import EmbeddedServer, embedded_endpoint_id, shared_server

if TYPE_CHECKING:  # the SDK is imported on first use: it takes ~1 s to import
    import openai

log = logging.getLogger(__name__)
install_log_redaction()  # httpx logs every request URL, user info included

#: Placeholder key for endpoints that need none (the SDK insists on a non-empty key).
NO_KEY = "sk-no-key-required"
#: Host names served on this machine (no proxy for them).
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: Seed offset between re-asks after an all-empty answer.
_RESEED_STEP = 7919

T = TypeVar("T")
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


#: HTTP statuses worth a retry (besides 5xx).
_RETRY_STATUS = frozenset({408, 409, 425, 429})
#: Longest single wait between attempts, seconds (a Retry-After above it is cut to it).
_MAX_WAIT_S = 30.0
#: (texts, finish reasons, request id, usage) of one HTTP answer.
_Answer = tuple[list[str], list[str | None], str | None, dict[str, Any]]


def _backoff(state: Any) -> float:
    """Exponential backoff with full jitter: U(0, min(8, 0.5·2^(k-1))) seconds."""
    import random

    return random.uniform(0.0, min(8.0, 0.5 * 2 ** (state.attempt_number - 1)))


_BACKOFF = _backoff


class _Transient(Exception):
    """A failure worth retrying (with the server's Retry-After, if it gave one)."""

    def __init__(
        self, message: str, retry_after: float | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason or message
        """The failure in a few words (for the one line that stops a run)."""


def _retry_after(headers: Any) -> float | None:
    """The wait a 429/503 asks for (``retry-after-ms`` or ``retry-after`` seconds), if any."""
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000.0
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except (TypeError, ValueError):
        return None
    return None


def _parse_body(response: Any, chat: bool) -> _Answer:
    """Read an HTTP 200 answer as a (chat) completion; anything else is a malformed answer.

    Args:
        response: The ``httpx`` response.
        chat: Whether a chat completion was asked.

    Returns:
        Texts and finish reasons (choice order), the request id and the usage.

    Raises:
        _Transient: If the body is not JSON (a proxy's HTML page, a wrong URL) or not a
            completion, naming the URL, the status and the content type.
    """
    url = redact_url(str(response.request.url)) if response.request is not None else "?"
    ctype = response.headers.get("content-type", "")
    where = f"{url} answered HTTP {response.status_code} ({ctype or 'no content type'})"
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        snippet = response.content[:80].decode("utf-8", "replace")
        raise _Transient(
            f"{where} with a body that is not JSON: {snippet!r}", reason="the answer is not JSON"
        ) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _Transient(
            f"{where} with JSON that is not a completion (no choices)",
            reason="the answer is not a completion",
        )
    texts: list[str] = []
    reasons: list[str | None] = []
    try:
        for c in sorted(choices, key=lambda c: int(c.get("index", 0))):
            if chat:
                msg = c.get("message") or {}
                refused = bool(msg.get("refusal"))
                content = msg.get("content")
                texts.append("" if refused or not isinstance(content, str) else content)
                reasons.append("refusal" if refused else c.get("finish_reason"))
            else:
                text = c.get("text")
                texts.append(text if isinstance(text, str) else "")
                reasons.append(c.get("finish_reason"))
    except (AttributeError, TypeError, ValueError):
        raise _Transient(
            f"{where} with malformed choices", reason="the answer is not a completion"
        ) from None
    raw_usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    # Token counts are bookkeeping: a count that is not a whole number >= 0 is dropped.
    usage = {
        key: value
        for key, value in raw_usage.items()
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0
    }
    rid = response.headers.get("x-request-id") or (
        data.get("id") if isinstance(data.get("id"), str) else None
    )
    return texts, reasons, rid, usage


_HTTP_CLIENTS: dict[bool, Any] = {}
_HTTP_LOCK = threading.Lock()


def _http_client(trust_env: bool) -> Any:
    """One HTTP connection pool per process (and proxy policy), shared by every client.

    Building one costs ~60 ms (its TLS context), which a benchmark of many short runs would
    pay per run; the pool is thread-safe, and the SDK leaves a client it was given open.
    """
    import openai

    with _HTTP_LOCK:
        client = _HTTP_CLIENTS.get(trust_env)
        if client is None:
            client = _HTTP_CLIENTS[trust_env] = openai.DefaultHttpxClient(trust_env=trust_env)
        return client


class _OutageClock:
    """Per endpoint (process-wide): since when has every call failed?"""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    def failed(self, endpoint: str, since: float) -> float:
        """Note a failed call that started at ``since`` (perf_counter); return the outage."""
        with self._lock:
            start = self._since.setdefault(endpoint, since)
        return time.perf_counter() - start

    def down(self, endpoint: str) -> float:
        """How long every call to the endpoint has failed (0 when it answers)."""
        with self._lock:
            start = self._since.get(endpoint)
        return 0.0 if start is None else time.perf_counter() - start

    def succeeded(self, endpoint: str) -> None:
        """Note a successful call: the outage (if any) is over."""
        with self._lock:
            self._since.pop(endpoint, None)


_OUTAGES = _OutageClock()


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
        """
        self.config = config if config is not None else LLMConfig.from_sources()
        if cache is None and self.config.use_cache:
            cache = CompletionCache(self.config.resolved_cache_path())
        self.cache = cache
        self.log = call_log if call_log is not None else CallLog(self.config.log_path)
        self._server = server
        self._sdk: openai.OpenAI | None = None
        self._model: str | None = self.config.model
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()

    # ----------------------------------------------------------------- endpoint
    @property
    def endpoint_id(self) -> str:
        """Endpoint identity used in cache keys (the embedded server's port is left out)."""
        if self.config.base_url is None:
            return embedded_endpoint_id()
        return redact_url(self.config.base_url.rstrip("/"))

    @property
    def model(self) -> str:
        """The model name sent with requests (see :meth:`resolve_model`)."""
        return self.resolve_model()

    def resolve_model(self) -> str:
        """The model name sent with requests; asks a configured endpoint once if unset.

        Runs resolve it before their first rollout (:class:`~icpi.session.RunSession`).
        The listing goes through the same bounded retries, call budget and outage clock as
        a completion: it is tried until the endpoint has been down for ``outage_s``.

        Returns:
            The configured model, the embedded model's alias, or the first model listed.

        Raises:
            NoModelError: If the endpoint lists no model or refuses to list them (exit 2).
            LLMEndpointDownError: If the listing failed for ``outage_s`` (exit 3).
        """
        with self._model_lock:
            if self._model is None:
                if self.config.base_url is None:
                    self._model = EMBEDDED_MODEL
                elif self.config.offline:  # refused by LLMConfig; kept for direct callers
                    raise NoModelError("offline mode needs the model name: pass --model")
                else:
                    self._model = self._discover_model()
            return self._model

    def _discover_model(self) -> str:
        while True:
            t0 = time.perf_counter()
            # No call outlasts the outage time that is left: the run stops on time.
            left = self.config.outage_s - _OUTAGES.down(self.endpoint_id)
            try:
                models = self._retry(
                    self._list_models, budget_s=max(0.1, min(self.config.call_timeout_s, left))
                )
            except (LLMAuthError, LLMBadRequestError) as exc:
                raise NoModelError(
                    f"no --model given, and {self.endpoint_id} refused to list its models"
                    f" ({exc}); pass --model"
                ) from exc
            except LLMUnavailableError as exc:
                down = _OUTAGES.failed(self.endpoint_id, since=t0)
                if down >= self.config.outage_s:
                    raise self._down(down, exc) from exc
                log.warning(
                    "no --model given, and listing the models at %s failed (%s); trying"
                    " again until it has been down %g s",
                    self.endpoint_id,
                    exc.reason,
                    self.config.outage_s,
                )
                time.sleep(min(1.0, self.config.outage_s - down))
                continue
            _OUTAGES.succeeded(self.endpoint_id)
            if not models:
                raise NoModelError(
                    f"no --model given, and {self.endpoint_id} lists no models; pass --model"
                )
            log.info("using model %r listed by %s", models[0], self.endpoint_id)
            return models[0]

    def _list_models(self, left_s: float) -> list[str]:
        """One ``GET /models``; the ids it lists (see :meth:`_attempt` for the errors)."""
        sdk = self._sdk_client()
        with self._classified(left_s):
            raw = sdk.models.with_raw_response.list(timeout=self._timeout(left_s))
        response = raw.http_response
        url = redact_url(str(response.request.url)) if response.request is not None else "?"
        ctype = response.headers.get("content-type", "") or "no content type"
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            snippet = response.content[:80].decode("utf-8", "replace")
            raise _Transient(
                f"{url} answered HTTP {response.status_code} ({ctype}) with a body that is not"
                f" JSON: {snippet!r}",
                reason="the answer is not JSON",
            ) from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise _Transient(
                f"{url} answered HTTP {response.status_code} ({ctype}) with JSON that is not a"
                " model list",
                reason="the answer is not a model list",
            )
        return [m["id"] for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)]

    def _down(self, down: float, exc: LLMUnavailableError) -> LLMEndpointDownError:
        """The error that stops a run: one short sentence (the details are logged at DEBUG)."""
        log.debug("endpoint %s down for %.0f s; last failure: %s", self.endpoint_id, down, exc)
        return LLMEndpointDownError(
            f"endpoint {self.endpoint_id} unreachable for {down:.0f} s ({exc.reason});"
            " rerun the same command to resume"
        )

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
            # Never route a loopback endpoint through an HTTP(S)_PROXY of the environment.
            loopback = urllib.parse.urlsplit(base_url).hostname in _LOOPBACK
            self._sdk = openai.OpenAI(
                base_url=base_url,
                api_key=self.config.api_key or NO_KEY,
                timeout=openai.Timeout(
                    self.config.timeout_s, connect=self.config.connect_timeout_s
                ),
                max_retries=0,  # retries are ours: bounded, with jitter, budgeted (see _retry)
                http_client=_http_client(trust_env=not loopback),
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
        extra_body: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> LLMResponse:
        """Get ``n`` completions of a prompt, from the cache or the endpoint.

        A string prompt goes to ``/v1/completions`` in completion mode and becomes one user
        message in chat mode; a message list always uses chat.

        Args:
            prompt: Text or chat messages.
            mode: ``chat`` or ``completion``; ``None`` uses the config's mode.
            sampling: Base sampling parameters; ``None`` uses the config's.
            extra_body: Backend-specific request fields (e.g. a llama.cpp ``grammar``, vLLM
                ``structured_outputs``, a ``response_format``); part of the cache key.
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
        if extra_body:
            request["extra_body"] = dict(extra_body)
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
        except LLMUnavailableError as exc:
            self.log.add_error(self._error_record(request, key, t0, exc))
            down = _OUTAGES.failed(self.endpoint_id, since=t0)
            if down >= self.config.outage_s:
                raise self._down(down, exc) from exc
            raise
        except LLMError as exc:
            self.log.add_error(self._error_record(request, key, t0, exc))
            raise
        _OUTAGES.succeeded(self.endpoint_id)
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
        """One request to the endpoint, retried on transient failures (see :meth:`_retry`)."""
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
        if request.get("extra_body"):
            kwargs["extra_body"] = request["extra_body"]
        texts, reasons, rid, usage = self._retry(lambda left: self._attempt(request, kwargs, left))
        p_tok = int(usage.get("prompt_tokens") or 0)
        c_tok = int(usage.get("completion_tokens") or 0)
        for r in reasons:
            if r == "content_filter":
                log.warning("%s filtered a sample (request id %s)", self.endpoint_id, rid)
        texts = ["" if r == "content_filter" else t for t, r in zip(texts, reasons, strict=True)]
        return texts, reasons, rid, p_tok, c_tok

    def _retry(self, attempt: Callable[[float], T], budget_s: float | None = None) -> T:
        """Run one request with bounded retries: exponential backoff with jitter, Retry-After.

        A failure is retried when it is transient (:class:`_Transient`: timeouts, refused or
        reset connections, HTTP 408/409/429/5xx, malformed bodies), at most
        ``max_retries`` times and within ``call_timeout_s``; then the call fails with
        :class:`LLMUnavailableError` naming every attempt and the real budget. Each attempt
        is given what is left of ``call_timeout_s`` and caps its timeouts at it, so a call
        never outlasts its budget.

        Args:
            attempt: Makes one request, given the seconds left of the call's budget.
            budget_s: The call's budget; ``None``: ``call_timeout_s``.

        Returns:
            Its answer.

        Raises:
            LLMUnavailableError: When the retries or the call's time budget are spent.
            LLMBadRequestError: When the endpoint refuses the request itself (no retry).
            LLMAuthError: When it refuses the credentials or the model (no retry).
        """
        import tenacity

        cfg = self.config
        budget = cfg.call_timeout_s if budget_s is None else budget_s
        failures: list[str] = []
        t0 = time.monotonic()

        def wait(state: tenacity.RetryCallState) -> float:
            backoff = _BACKOFF(state)
            exc = state.outcome.exception() if state.outcome is not None else None
            after = exc.retry_after if isinstance(exc, _Transient) else None
            left = budget - (time.monotonic() - t0)
            return max(0.0, min(max(backoff, after or 0.0), _MAX_WAIT_S, left))

        def note(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            failures.append(str(exc))
            log.warning(
                "%s: attempt %d failed (%s); retrying", self.endpoint_id, state.attempt_number, exc
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(cfg.max_retries + 1)
            | tenacity.stop_after_delay(budget),
            wait=wait,
            retry=tenacity.retry_if_exception_type(_Transient),
            before_sleep=note,
            reraise=True,
        )
        try:
            return retrying(lambda: attempt(budget - (time.monotonic() - t0)))
        except _Transient as exc:
            died = None if self._server is None else self._server.exit_report()
            if died is not None:
                raise LLMUnavailableError(
                    f"{self.endpoint_id}: {died}", reason="the embedded server died"
                ) from exc
            failures.append(str(exc))
            raise LLMUnavailableError(
                f"{self.endpoint_id}: no usable answer after {len(failures)} attempt(s) in"
                f" {time.monotonic() - t0:.1f} s ({'; '.join(failures)}); budget per call:"
                f" connect {cfg.connect_timeout_s:g} s and read {cfg.timeout_s:g} s per"
                f" attempt, {cfg.max_retries + 1} attempts, {budget:g} s in all",
                reason=exc.reason,
            ) from exc

    def _timeout(self, left_s: float) -> Any:
        """The SDK timeout of one attempt: the configured ones, capped at ``left_s``.

        The embedded server is waited for as long as it runs (no read timeout): it answers
        one request at a time, each bounded by ``max_tokens`` and its context, so a slow
        answer is the machine's load, not a fault. A timeout there abandoned a request the
        server kept computing, queued the retry behind it and, past the call's budget, made
        a load peak a fallback: two runs with one seed differed (issue 21). A dead server
        still ends the call (connection error, then its exit report).
        """
        import openai

        left = max(left_s, 0.001)
        connect = min(self.config.connect_timeout_s, left)
        if self.config.embedded:
            return openai.Timeout(None, connect=connect)
        return openai.Timeout(min(self.config.timeout_s, left), connect=connect)

    @contextlib.contextmanager
    def _classified(self, left_s: float) -> Iterator[None]:
        """Turn the SDK's errors of one request into transient ones or typed errors."""
        import openai

        try:
            yield
        except openai.APITimeoutError as exc:
            read = min(self.config.timeout_s, max(left_s, 0.0))
            raise _Transient(
                f"no answer within the read timeout of {read:.3g} s", reason="no answer"
            ) from exc
        except openai.APIConnectionError as exc:
            raise _Transient(
                f"connection failed ({redact_text(str(exc))})", reason="connection failed"
            ) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = redact_text(str(exc.message))[:200]
            detail = f"HTTP {status} (request id {exc.request_id}): {message}"
            if status == 429:
                detail = "rate limited, " + detail
            if status in _RETRY_STATUS or status >= 500:
                raise _Transient(
                    detail, _retry_after(exc.response.headers), reason=f"HTTP {status}"
                ) from exc
            if status in (401, 403, 404):
                raise LLMAuthError(
                    f"{self.endpoint_id} refused the request: {detail}; check --api-key /"
                    " OPENAI_API_KEY, --model and --base-url"
                ) from exc
            raise LLMBadRequestError(f"{self.endpoint_id}: {detail}") from exc
        except openai.OpenAIError as exc:
            raise _Transient(
                f"malformed answer: {redact_text(str(exc))}", reason="malformed answer"
            ) from exc

    def _attempt(self, request: dict[str, Any], kwargs: dict[str, Any], left_s: float) -> _Answer:
        """One HTTP request, its timeouts capped at ``left_s``; failures classified."""
        sdk = self._sdk_client()
        chat = request["mode"] == "chat"
        api = sdk.chat.completions if chat else sdk.completions
        args = {"messages": request["messages"]} if chat else {"prompt": request["prompt"]}
        with self._classified(left_s):
            raw = api.with_raw_response.create(**args, **kwargs, timeout=self._timeout(left_s))
        return _parse_body(raw.http_response, chat)

    @property
    def stats(self) -> dict[str, Any]:
        """Running totals of calls, cache hits, HTTP requests, tokens and latency."""
        return self.log.stats.to_dict()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the cache (the process's HTTP pool and embedded server stay up for others)."""
        with self._lock:
            self._sdk = None  # its HTTP pool is the process's (see _http_client): left open
        if self.cache is not None:
            self.cache.close()


if TYPE_CHECKING:  # static check: the client is a sampler backend of the core
    from icpi.core.samplers import TextGenerator

    def _is_text_generator(client: LLMClient) -> TextGenerator:
        return client
