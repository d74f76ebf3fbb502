"""``icpi llm``: run the embedded model server, or ask a model one question.

- ``icpi llm serve`` starts llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct
  on 127.0.0.1, prints its base URL and serves in the foreground until interrupted.
  Point other processes at it with ``OPENAI_BASE_URL=<printed URL>``.
- ``icpi llm serve --calibration`` serves the calibration proposer instead: not a language
  model, an instrument that answers ICPI prompts with the correction towards a near-optimal
  θ* of the instance (:mod:`icpi.manipulation.calibration`).
- ``icpi llm ask "1 2 3 4"`` sends one request through the full client (cache, logs,
  retries) to the configured endpoint (``--base-url`` / ``OPENAI_BASE_URL``) or the
  embedded model, and prints the completions.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from icpi.llm.client import LLMClient
from icpi.llm.config import add_llm_arguments, config_from_args
from icpi.llm.errors import LLMError
from icpi.llm.server import EmbeddedServer

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    """Register ``icpi llm`` and its verbs.

    Args:
        subparsers: The action returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "llm", help="Embedded model server and one-off queries.", description=__doc__
    )
    verbs = parser.add_subparsers(dest="llm_verb", required=True, metavar="LLM_VERB")

    serve = verbs.add_parser(
        "serve", help="Serve the embedded SmolLM2-135M model on 127.0.0.1 (foreground)."
    )
    serve.add_argument("--port", type=int, help="TCP port (default: a free one).")
    serve.add_argument("--n-ctx", type=int, default=4096, help="Context length, tokens.")
    serve.add_argument("--n-threads", type=int, help="CPU threads (default: llama.cpp's).")
    serve.add_argument("--model-file", type=Path, help="Another GGUF file to serve.")
    serve.add_argument(
        "--startup-timeout", type=float, default=120.0, help="Seconds to wait for readiness."
    )
    serve.add_argument(
        "--calibration",
        action="store_true",
        help="Serve the calibration proposer instead (not a language model: it answers ICPI"
        " prompts with the correction towards a near-optimal θ* of the instance; models"
        " calibration-sigma<percent>, calibration-random, calibration-zero).",
    )
    serve.add_argument(
        "--optimum-cache",
        type=Path,
        help="Folder of the calibration proposer's θ* files (default: ~/.cache/icpi/calibration).",
    )
    serve.set_defaults(func=run_serve)

    ask = verbs.add_parser("ask", help="Send one prompt and print the completions.")
    ask.add_argument("prompt", help="Prompt text; '-' reads standard input.")
    ask.add_argument("--system", help="System message (implies chat mode).")
    ask.add_argument("--json", action="store_true", help="Print the full response as JSON.")
    add_llm_arguments(ask)
    ask.set_defaults(func=run_ask)


def run_serve(args: argparse.Namespace) -> int:
    """Serve the embedded model until interrupted.

    Args:
        args: Parsed ``icpi llm serve`` flags.

    Returns:
        The exit code.
    """
    if args.calibration:
        return serve_calibration(args)
    server = EmbeddedServer(
        args.model_file,
        port=args.port,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        startup_timeout_s=args.startup_timeout,
    )
    try:
        url = server.start()
    except LLMError as exc:
        log.error("%s", exc)
        return 1
    print(url, flush=True)
    log.info("serving %s at %s; export OPENAI_BASE_URL=%s (Ctrl-C stops)", server.model, url, url)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        server.stop()
    return code


def serve_calibration(args: argparse.Namespace) -> int:
    """Serve the calibration proposer until interrupted (``icpi llm serve --calibration``).

    Args:
        args: Parsed ``icpi llm serve`` flags.

    Returns:
        The exit code.
    """
    from icpi.manipulation.calibration import LISTED_MODELS, OptimumStore, serve

    store = OptimumStore(args.optimum_cache)
    endpoint = serve(args.port or 0, store)
    url = endpoint.start()
    print(url, flush=True)
    log.info(
        "calibration proposer at %s (models %s; θ* in %s); Ctrl-C stops",
        url,
        ", ".join(LISTED_MODELS),
        store.folder,
    )

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        endpoint.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.stop()
    return 0


def run_ask(args: argparse.Namespace) -> int:
    """Send one prompt and print the completions.

    Args:
        args: Parsed ``icpi llm ask`` flags.

    Returns:
        The exit code (1 on any LLM error).
    """
    text = sys.stdin.read() if args.prompt == "-" else args.prompt
    config = config_from_args(args)
    log.info("LLM config: %s", json.dumps(config.public_dict()))
    client = LLMClient(config)
    prompt: Any = text
    if args.system:
        prompt = [{"role": "system", "content": args.system}, {"role": "user", "content": text}]
    try:
        resp = client.generate(prompt)
    except LLMError as exc:
        log.error("%s", exc)
        return 1
    finally:
        client.close()
    if args.json:
        print(
            json.dumps(
                {
                    "texts": resp.texts,
                    "finish_reasons": resp.finish_reasons,
                    "prompt_tokens": resp.prompt_tokens,
                    "completion_tokens": resp.completion_tokens,
                    "latency_s": resp.latency_s,
                    "cached": resp.cached,
                    "model": resp.model,
                    "key": resp.key,
                },
                ensure_ascii=False,
            )
        )
    else:
        for i, t in enumerate(resp.texts):
            if len(resp.texts) > 1:
                print(f"--- sample {i}")
            print(t)
    log.info(
        "%d+%d tokens, %.3f s%s",
        resp.prompt_tokens,
        resp.completion_tokens,
        resp.latency_s,
        " (from cache)" if resp.cached else "",
    )
    return 0
