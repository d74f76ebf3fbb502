"""Figures of the language improvers on Game of 24 with the embedded model.

Runs every method (ICRL Preset, ICRL Autonomous, Best-of-N, Self-Refine, Reflexion,
ME-ICPO) on the same generated puzzles (solvable ones, seed 0) with the embedded
SmolLM2-135M-Instruct model and prints, per method:

1. success rate per round and running-max success (the share of puzzles solved by any
   round so far), and for ME-ICPO the final Mean@k and Maj@k;
2. tokens per round (prompt + completion of every call of the round, judge, critiques,
   reflections, summaries and entropy samples included), mean per puzzle.

The 135M model shows the pipeline, not the papers' numbers: expect zero or near-zero
success. Budgets are cut to fit two CPU cores (short responses, 2 rounds, ME-ICPO with
k = entropy_k = final_k = 2 and 1 round); every run is a resumable run directory and
every request is cached, so a second invocation replays in seconds.

Usage: ``python benchmarks/bench_language.py [--puzzles 20] [--rounds 2] [--out DIR]
[--methods icrl-preset,...] [--max-tokens 64] [--k 2] [--entropy-k 2] [--me-rounds 1]``
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from icpi.language import METHODS, LangConfig, run_language
from icpi.llm import LLMConfig, stop_shared_server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--puzzles", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--me-rounds", type=int, default=1)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--helper-tokens", type=int, default=40)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--entropy-k", type=int, default=2)
    ap.add_argument("--final-k", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/icpi-bench-language"))
    ap.add_argument("--cache", help="LLM cache file (default: the user cache)")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    llm = LLMConfig.from_sources({"cache_path": args.cache, "mode": "completion"}, env={})
    rows = []
    t_all = time.perf_counter()
    try:
        for method in args.methods.split(","):
            me = method == "me-icpo"
            cfg = LangConfig(
                task="game24",
                method=method,
                problems=args.puzzles,
                rounds=args.me_rounds if me else args.rounds,
                seed=args.seed,
                max_tokens=args.max_tokens,
                helper_tokens=args.helper_tokens,
                k=args.k,
                entropy_k=args.entropy_k,
                final_k=args.final_k,
            )
            t0 = time.perf_counter()
            summary = run_language(cfg, args.out / method, llm=llm)
            summary["bench_wall_s"] = time.perf_counter() - t0
            rows.append(summary)
            print(f"done {method} in {summary['bench_wall_s']:.0f} s", flush=True)
    finally:
        stop_shared_server()
    print()
    print(
        f"Game of 24, {args.puzzles} solvable puzzles (seed {args.seed}), embedded "
        f"SmolLM2-135M-Instruct, completion mode, temperature 0.6, top_p 0.95, "
        f"max_tokens {args.max_tokens}; ME-ICPO k={args.k} entropy_k={args.entropy_k} "
        f"final_k={args.final_k}; load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'method':<16} {'success/round':<18} {'running max':<18} {'tokens/round':<22} "
        f"{'tokens':>8} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    for s in rows:
        succ = " ".join(f"{x:.2f}" for x in s["success_rate"])
        run = " ".join(f"{x:.2f}" for x in s["running_max_success"])
        tok = " ".join(f"{x:.0f}" for x in s["tokens_per_round"])
        extra = ""
        if "mean_at_k" in s:
            extra = (
                f"  Mean@{s['final_k']} {s['mean_at_k']:.2f} Maj@{s['final_k']} {s['maj_at_k']:.2f}"
            )
        print(
            f"{s['method']:<16} {succ:<18} {run:<18} {tok:<22} {s['tokens_total']:>8} "
            f"{s['bench_wall_s']:>7.0f}{extra}"
        )
    print(f"\ntotal wall time {time.perf_counter() - t_all:.0f} s; run directories in {args.out}")


if __name__ == "__main__":
    main()
