"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

Each incoming request takes the next behaviour of the script — a JSON body, a raw text
body with any content type (an HTML error page), an HTTP status with headers
(``Retry-After``), a delay (slower than a timeout), or a dropped connection. The last one
repeats, or the script cycles (``set(..., cycle=True)``, e.g. a hostile endpoint). Every
request is recorded (path, body, headers), so a test can assert what the real ``openai``
client sent. Threaded: concurrent requests are answered concurrently.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AUTO = "auto"


@dataclass
class Reply:
    """One scripted behaviour."""

    status: int = 200
    body: Any = None  # dict -> JSON; str -> raw text
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering
    headers: dict[str, str] = field(default_factory=dict)


def chat_body(
    *texts: str | None,
    refusal: str | None = None,
    finish: str = "stop",
    prompt_tokens: int = 11,
    completion_tokens: int = 3,
) -> dict[str, Any]:
    """A chat-completion response body with one choice per text."""
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": t, "refusal": refusal},
            "finish_reason": finish,
        }
        for i, t in enumerate(texts)
    ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def completion_body(
    *texts: str,
    finish: str = "stop",
    prompt_tokens: int = 7,
    completion_tokens: int = 2,
) -> dict[str, Any]:
    """A completion response body with one choice per text."""
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {"index": i, "text": t, "finish_reason": finish, "logprobs": None}
            for i, t in enumerate(texts)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class FakeOpenAI:
    """The server (started at construction, on a free loopback port)."""

    def __init__(self, port: int = 0) -> None:
        """Start serving on 127.0.0.1.

        Args:
            port: TCP port; 0 picks a free one.
        """
        self.script: list[Reply] = [Reply(body=chat_body("ok"))]
        self.cycle = False
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._next = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake._lock:
                    fake.requests.append(
                        {
                            "path": self.path,
                            "method": self.command,
                            "body": json.loads(raw) if raw else None,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                        }
                    )
                    reply = fake._take()
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                body = reply.body
                if body == AUTO:  # an "x" answer shaped for the endpoint asked
                    body = chat_body("x") if "chat" in self.path else completion_body("x")
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                headers = {"Content-Type": "application/json", **reply.headers}
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-request-id", f"req_{len(fake.requests)}")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

            do_POST = _handle
            do_GET = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        """The server's ``/v1`` base URL."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _take(self) -> Reply:
        if self.cycle:
            reply = self.script[self._next % len(self.script)]
            self._next += 1
            return reply
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def set(self, *replies: Reply, cycle: bool = False) -> None:
        """Replace the script (and forget the recorded requests).

        Args:
            *replies: Behaviours, in order.
            cycle: Cycle through them (else the last one repeats).
        """
        with self._lock:
            self.script = list(replies)
            self.cycle = cycle
            self._next = 0
            self.requests.clear()

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
