"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for unit tests.

Each incoming request pops the next behaviour from ``script`` (the last one repeats):
a dict response, an HTTP status, a delay, or a dropped connection.
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
    status: int = 200
    body: Any = None  # dict -> JSON; str -> raw text
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering
    headers: dict[str, str] = field(default_factory=dict)


def chat_body(*texts, refusal=None, finish="stop", prompt_tokens=11, completion_tokens=3):
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


def completion_body(*texts, finish="stop", prompt_tokens=7, completion_tokens=2):
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
    def __init__(self) -> None:
        self.script: list[Reply] = [Reply(body=chat_body("ok"))]
        # Optional: a function of the request (path, body) returning the Reply; overrides script.
        self.responder: Any = None
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
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
                    if fake.responder is not None:
                        reply = fake.responder(self.path, json.loads(raw) if raw else None)
                    else:
                        reply = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
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
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-request-id", f"req_{len(fake.requests)}")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

            do_POST = _handle
            do_GET = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def set(self, *replies: Reply) -> None:
        with self._lock:
            self.script = list(replies)
            self.requests.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
