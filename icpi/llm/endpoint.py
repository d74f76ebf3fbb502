"""A small OpenAI-compatible HTTP endpoint that answers from a Python function.

It serves ``GET /v1/models``, ``POST /v1/completions`` and ``POST /v1/chat/completions``
on loopback, the subset of the API that :class:`~icpi.llm.LLMClient` (the real ``openai``
client) uses. Each completion request is handed to an :data:`Answerer` as an
:class:`AnswerRequest`; what it returns becomes the ``n`` choices of the response. An
answerer that raises :class:`AnswerError` gets an OpenAI-shaped error body with that HTTP
status (400: the client does not retry; 5xx: it retries). Threaded: requests are answered
concurrently. The calibration proposer (:mod:`icpi.manipulation.calibration`) runs on it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

#: Loopback only: nothing else on the network can reach it.
HOST = "127.0.0.1"


@dataclass(frozen=True)
class AnswerRequest:
    """One completion request, as the answerer sees it."""

    model: str
    """The model name asked for."""
    prompt: str
    """The prompt text; in chat mode every message's content, one per line."""
    n: int
    """Completions asked for."""
    seed: int | None
    """The request's sampling seed."""
    user: str | None
    """The request's ``user`` field (the caller's identifier, free text)."""
    chat: bool
    """Whether it came to ``/v1/chat/completions`` (else ``/v1/completions``)."""
    body: dict[str, Any]
    """The whole JSON body."""


class AnswerError(Exception):
    """The answerer refuses a request (the message reaches the client)."""

    def __init__(self, message: str, status: int = 400) -> None:
        """Create the error.

        Args:
            message: What is wrong, for the caller.
            status: HTTP status of the answer.
        """
        super().__init__(message)
        self.status = status


#: ``request -> completions`` (at most ``request.n``; fewer are topped up by the client).
Answerer = Callable[[AnswerRequest], Sequence[str]]


def request_of(path: str, body: dict[str, Any]) -> AnswerRequest:
    """Read an :class:`AnswerRequest` from a completion request body.

    Args:
        path: The request path (``/v1/completions`` or ``/v1/chat/completions``).
        body: The JSON body.

    Returns:
        The request.

    Raises:
        AnswerError: If the body lacks its prompt or has a bad ``n``.
    """
    chat = path.rstrip("/").endswith("/chat/completions")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise AnswerError("a chat request needs a non-empty 'messages' list")
        prompt = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    else:
        raw = body.get("prompt")
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        if not isinstance(raw, str):
            raise AnswerError("a completion request needs a string 'prompt'")
        prompt = raw
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise AnswerError(f"'n' must be a whole number >= 1, got {n!r}")
    seed = body.get("seed")
    user = body.get("user")
    return AnswerRequest(
        model=str(body.get("model", "")),
        prompt=prompt,
        n=n,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        user=user if isinstance(user, str) else None,
        chat=chat,
        body=body,
    )


def response_body(path: str, model: str, texts: Sequence[str]) -> dict[str, Any]:
    """An OpenAI-shaped response with one choice per text.

    Args:
        path: The request path (chat or plain completion).
        model: Model name echoed back.
        texts: The completions.

    Returns:
        The JSON body (token counts are whitespace word counts).
    """
    chat = path.endswith("/chat/completions")
    if chat:
        choices: list[dict[str, Any]] = [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ]
    else:
        choices = [
            {"index": i, "text": t, "finish_reason": "stop", "logprobs": None}
            for i, t in enumerate(texts)
        ]
    words = sum(len(t.split()) for t in texts)
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{time.monotonic_ns()}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": 0, "completion_tokens": words, "total_tokens": words},
    }


class FunctionEndpoint:
    """The endpoint: a threaded HTTP server on 127.0.0.1 (started by :meth:`start`)."""

    def __init__(self, answer: Answerer, models: Sequence[str], port: int = 0) -> None:
        """Describe the endpoint.

        Args:
            answer: Answers each completion request.
            models: Model names ``/v1/models`` lists.
            port: TCP port; 0 picks a free one.
        """
        self.answer = answer
        self.models = list(models)
        self.port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The ``/v1`` base URL (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("the endpoint has not been started")
        return f"http://{HOST}:{self._httpd.server_address[1]}/v1"

    def start(self) -> str:
        """Start serving in a background thread.

        Returns:
            The base URL.
        """
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer((HOST, self.port), _handler(self))
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), daemon=True
            )
            self._thread.start()
        return self.base_url

    def serve_forever(self) -> None:
        """Block until :meth:`stop` is called from another thread (or an interrupt)."""
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.2)

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> FunctionEndpoint:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _handler(endpoint: FunctionEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms ACK wait)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            kind = "invalid_request_error" if status < 500 else "server_error"
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                data = [{"id": m, "object": "model", "owned_by": "icpi"} for m in endpoint.models]
                self._send(200, {"object": "list", "data": data})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not self.path.rstrip("/").endswith("completions"):
                self._error(404, f"no route {self.path}")
                return
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise AnswerError("the request body must be a JSON object")
                request = request_of(self.path, body)
                texts = list(endpoint.answer(request))[: request.n]
            except json.JSONDecodeError as exc:
                self._error(400, f"the request body is not JSON: {exc}")
            except AnswerError as exc:
                self._error(exc.status, str(exc))
            except Exception as exc:  # an answerer bug is the endpoint's error, not a hang
                log.exception("answering %s failed", self.path)
                self._error(500, f"{type(exc).__name__}: {exc}")
            else:
                self._send(200, response_body(self.path, request.model, texts))

    return Handler


__all__ = ["AnswerError", "AnswerRequest", "Answerer", "FunctionEndpoint", "request_of"]
