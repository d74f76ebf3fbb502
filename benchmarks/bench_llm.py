"""Model-call throughput: benchmark concurrency, and prompt reuse of the embedded model.

1. ``icpi bench`` model runs against an OpenAI-compatible test server that answers every
   request after 0.5 s: the same work (ICPI on ``--runs`` instances, ``--iterations``
   rollouts each) with ``--llm-concurrency 1`` and ``8``; prints both wall times and their
   ratio (goal: at least 6x).
2. The embedded SmolLM2-135M server (llama.cpp answers one request at a time, and ignores
   ``n``: the client tops it up with requests of the same prompt): seconds per query for
   n = 1 and n = 4 on real ICPI prompts, after a first call that processes the prompt. A
   server that reuses the processed prompt pays for it once, not n times.

Usage: ``python benchmarks/bench_llm.py [--runs 8] [--iterations 8] [--no-embedded]``
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from icpi.llm.testing import FakeOpenAI, Reply, completion_body
from icpi.manipulation.bench import run_benchmark


def concurrency(runs: int, iterations: int, n: int, delay_s: float) -> float:
    fake = FakeOpenAI()
    fake.set(Reply(body=completion_body(" 1 -1 0"), delay_s=delay_s))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            llm = {"base_url": fake.base_url, "model": "m", "cache_path": str(Path(tmp) / "c")}
            report = run_benchmark(
                ["ball-roll-gc"],
                ["icpi"],
                list(range(runs)),
                iterations,
                Path(tmp) / "bench",
                llm=llm,
                llm_concurrency=n,
                progress=False,
            )
            return float(report["runs_wall_s"])  # the runs alone, not the reports
    finally:
        fake.close()


def prompt_reuse(queries: int) -> None:
    import json

    from icpi.llm import LLMClient, LLMConfig
    from icpi.manipulation.config import load_run_config
    from icpi.manipulation.run import run_method

    with tempfile.TemporaryDirectory() as tmp:
        run_method(
            load_run_config({"task": "slide", "method": "icpi", "iterations": queries + 1}),
            Path(tmp) / "r",
            llm=LLMConfig.from_sources(
                {"cache_path": str(Path(tmp) / "c")}, defaults={"max_tokens": 24, "stop": ["\n"]}
            ),
        )
        prompts = [
            json.loads(x)["request"]["prompt"] for x in (Path(tmp) / "r" / "llm_calls.jsonl").open()
        ]
        client = LLMClient(LLMConfig(use_cache=False))
        try:
            first, per_n = [], {1: [], 4: []}
            for i, p in enumerate(prompts):
                t0 = time.perf_counter()
                r = client.complete(p, n=1, max_tokens=24, stop=["\n"], temperature=0.7, seed=i)
                first.append(time.perf_counter() - t0)
                for n in (1, 4):
                    t0 = time.perf_counter()
                    client.complete(
                        p, n=n, max_tokens=24, stop=["\n"], temperature=0.7, seed=100 + i
                    )
                    per_n[n].append(time.perf_counter() - t0)
            tokens = r.prompt_tokens
        finally:
            client.close()
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"\nembedded SmolLM2-135M, {len(prompts)} ICPI prompts of ~{tokens} tokens:")
    print(f"  first call of a prompt (processes it): {mean(first):.2f} s")
    print(f"  again, n = 1: {mean(per_n[1]):.2f} s/query")
    print(f"  again, n = 4: {mean(per_n[4]):.2f} s/query ({mean(per_n[4]) / 4:.2f} s per sample)")
    once = mean(first) + mean(per_n[4]) - mean(per_n[1])
    print(f"  n = 4, prompt processed once: {once:.2f} s; paying for it 4 times would be"
          f" {4 * mean(first):.2f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--queries", type=int, default=3)
    parser.add_argument("--no-embedded", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    concurrency(2, 2, 1, 0.0)  # warm up: imports, dataset, compiled models
    calls = args.runs * (args.iterations - 1)
    print(f"test server answering after {args.delay} s; {args.runs} ICPI runs, {calls} calls:")
    seq = concurrency(args.runs, args.iterations, 1, args.delay)
    print(f"  --llm-concurrency 1: {seq:.1f} s")
    par = concurrency(args.runs, args.iterations, 8, args.delay)
    print(f"  --llm-concurrency 8: {par:.1f} s")
    print(f"  speed-up: {seq / par:.1f}x (goal >= 6x)")
    if not args.no_embedded:
        prompt_reuse(args.queries)


if __name__ == "__main__":
    main()
