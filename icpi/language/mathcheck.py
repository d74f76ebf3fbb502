r"""Symbolic comparison of math answers with ``math-verify``, safe in any thread.

``0.5``, ``1/2``, ``\\frac{1}{2}`` and ``50\\%`` are the same answer; ``2\\sqrt{2}`` equals
``\\sqrt{8}``. Answers are parsed as LaTeX only (``LatexExtractionConfig``, which parses
with ANTLR); the plain-expression mode of ``math-verify`` hands text to SymPy's
``parse_expr`` (an ``eval``) and is never used: nothing from a model is evaluated as code.

``math-verify`` bounds its own work with ``signal.alarm``, which only works in a process's
main thread, and a huge power such as ``10^{10^{100}}`` can stall SymPy in C code where no
signal lands. Comparisons therefore run in one worker process (its main thread, with
``math-verify``'s timeouts on), and the caller waits at most :data:`WALL_TIMEOUT_S`; a
worker that does not answer in time is killed and replaced, and the comparison counts as
"not equal". Results are memoised.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import select
import subprocess
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)

#: Longest answer compared, characters (final answers are short).
MAX_ANSWER_CHARS = 300
#: Seconds ``math-verify`` may spend parsing or comparing inside the worker.
VERIFY_TIMEOUT_S = 5
#: Seconds the caller waits for the worker before killing it.
WALL_TIMEOUT_S = 15.0


def serve() -> None:  # pragma: no cover - runs in the worker process
    """Answer ``[gold, answer]`` JSON lines on stdin with ``true``/``false`` lines."""
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0)]

    def read(text: str) -> Any:
        body = text if "$" in text or "\\boxed" in text else f"${text}$"
        return parse(body, extraction_config=config, parsing_timeout=VERIFY_TIMEOUT_S)

    for line in sys.stdin:
        try:
            gold, answer = json.loads(line)
            ok = bool(verify(read(gold), read(answer), timeout_seconds=VERIFY_TIMEOUT_S))
        except Exception:  # an unparsable answer is a wrong answer
            ok = False
        sys.stdout.write("true\n" if ok else "false\n")
        sys.stdout.flush()


class _Checker:
    """One worker process (``python -m icpi.language.mathcheck``) shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if importlib.util.find_spec("math_verify") is None:
            raise ImportError(
                "symbolic math answers need math-verify: pip install 'math-verify==0.9.0'"
            )
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "icpi.language.mathcheck"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        return self._proc

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def equal(self, gold: str, answer: str) -> bool:
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else None
            proc = proc or self._start()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps([gold, answer]) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], WALL_TIMEOUT_S)
            line = proc.stdout.readline() if ready else ""
            if line.strip() in ("true", "false"):
                return line.strip() == "true"
            log.warning(
                "math answer comparison gave no verdict in %.0f s (%r vs %r); counted as unequal",
                WALL_TIMEOUT_S, gold[:40], answer[:40],
            )  # fmt: skip
            self._kill()
            return False


_checker = _Checker()


@functools.lru_cache(maxsize=4096)
def answers_equal(gold: str, answer: str) -> bool:
    r"""Whether two math answers are the same value or expression.

    Args:
        gold: The reference answer (LaTeX or plain, e.g. ``\\frac{1}{2}``).
        answer: The answer to check.

    Returns:
        True when ``math-verify`` finds them equal (exact strings always are).

    Raises:
        ImportError: If ``math-verify`` is not installed.
    """
    g, a = gold.strip(), answer.strip()
    if g == a:
        return True
    if not g or not a or max(len(g), len(a)) > MAX_ANSWER_CHARS:
        return False
    return _checker.equal(g, a)


if __name__ == "__main__":  # pragma: no cover - the worker process
    serve()
