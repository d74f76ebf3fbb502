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
import json
import logging
import os
import time
from pathlib import Path

from icpi.core import Attempt
from icpi.language import METHODS, LangConfig, run_language
from icpi.language.runner import round_records, summarise_rounds
from icpi.language.tasks import Problem
from icpi.llm import LLMConfig, LLMUnavailableError, stop_shared_server


def report(out: Path, methods: list[str]) -> list[dict]:
    """Read each method's run directory (finished or not) into one table row."""
    rows = []
    for method in methods:
        d = out / method
        if not (d / "config.json").exists():
            continue
        cfg = json.loads((d / "config.json").read_text())["run"]
        recs = []
        for f in sorted((d / "attempts").glob("[0-9][0-9][0-9].jsonl")):
            lines = f.read_text().splitlines()[1:]
            atts = [Attempt.from_dict(json.loads(x)["attempt"]) for x in lines if x.strip()]
            index = int(f.stem)
            recs += round_records(Problem(index, str(index)), atts)
        done = len({r["problem"] for r in recs if r["round"] == cfg["rounds"] - 1})
        per_round = summarise_rounds([r for r in recs], cfg["rounds"])
        finals = [json.loads(f.read_text()) for f in sorted((d / "attempts").glob("*.final.json"))]
        live = [json.loads(x) for x in (d / "llm_calls.jsonl").read_text().splitlines() if x]
        rows.append(
            {
                "method": method,
                "puzzles_done": done,
                "puzzles": cfg["problems"],
                "success_rate": [r["success_rate"] for r in per_round],
                "running_max_success": [r["running_max_success"] for r in per_round],
                "tokens_per_round": [r["tokens_mean"] for r in per_round],
                "reward_per_round": [r["mean_reward"] or 0.0 for r in per_round],
                "tokens_total": sum(r["usage"].get("tokens", 0) for r in recs)
                + sum(f["usage"].get("tokens", 0) for f in finals),
                "model_s": sum(c["latency_s"] for c in live if not c.get("cached")),
                "finals": finals,
                "final_k": cfg["final_k"],
            }
        )
    return rows


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
    ap.add_argument("--report-only", action="store_true", help="Only print what the run dirs hold")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    llm = LLMConfig.from_sources({"cache_path": args.cache, "mode": "completion"}, env={})
    methods = args.methods.split(",")
    t_all = time.perf_counter()
    if not args.report_only:
        try:
            for method in methods:
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
                for _try in range(5):  # a killed server stops the run; resume on a new one
                    try:
                        run_language(cfg, args.out / method, llm=llm)
                        break
                    except LLMUnavailableError as exc:
                        print(f"{method}: model unavailable ({exc}); resuming", flush=True)
                        stop_shared_server()
                print(f"done {method} in {time.perf_counter() - t0:.0f} s", flush=True)
        finally:
            stop_shared_server()
    rows = report(args.out, methods)
    print()
    print(
        f"Game of 24, {args.puzzles} solvable puzzles (seed {args.seed}), embedded "
        f"SmolLM2-135M-Instruct, completion mode, temperature 0.6, top_p 0.95, "
        f"max_tokens {args.max_tokens}, {args.rounds} rounds (ME-ICPO {args.me_rounds} round, "
        f"k={args.k} entropy_k={args.entropy_k} final_k={args.final_k}); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'method':<16} {'done':>5} {'success/round':<16} {'running max':<16} "
        f"{'reward/round':<13} {'tokens/round':<14} {'tokens':>7} {'model s':>8}"
    )
    print(header)
    print("-" * len(header))
    for s in rows:
        succ = " ".join(f"{x:.2f}" for x in s["success_rate"])
        run = " ".join(f"{x:.2f}" for x in s["running_max_success"])
        tok = " ".join(f"{x:.0f}" for x in s["tokens_per_round"])
        rew = " ".join(f"{x:.2f}" for x in s["reward_per_round"])
        extra = ""
        if s["finals"]:
            k, n = s["final_k"], len(s["finals"])
            mean = sum(f["mean_at_k"] for f in s["finals"]) / n
            maj = sum(bool(f["maj_at_k"]) for f in s["finals"]) / n
            extra = f"  Mean@{k} {mean:.2f} Maj@{k} {maj:.2f}"
        print(
            f"{s['method']:<16} {s['puzzles_done']:>2}/{s['puzzles']:<2} {succ:<16} {run:<16} "
            f"{rew:<13} {tok:<14} {s['tokens_total']:>7} {s['model_s']:>8.0f}{extra}"
        )
    print(
        "\ndone: puzzles with every round finished; reward: mean step reward + 10 per valid "
        "equation (ME-ICPO: majority-vote self-reward); tokens/round: mean per puzzle (policy, "
        "judge, critiques, reflections, summaries, entropy samples); model s: live model time"
    )
    print(f"total wall time {time.perf_counter() - t_all:.0f} s; run directories in {args.out}")


if __name__ == "__main__":
    main()
