"""The ICRL paper's Game of 24 comparison, on the standard split, with any endpoint.

Runs each method on the first ``--puzzles`` puzzles of the standard test split (ranks
901–1000 of the 1362 solvable puzzles, as in Tree of Thoughts and "Reward Is Enough") for
``--rounds`` rounds, with the paper's reward setting by default: the model's own judge
scores every step and the final equation, and the exact verifier only reports success.
It prints, per method, the success after the last round (running max: puzzles solved by
any round, as the paper's Table 1) with a 95 % Wilson interval, the last round's success,
the mean reward the method saw, tokens, live model time, and for ME-ICPO Mean@k / Maj@k.

The paper's setting (GPT-4.1, 100 puzzles, 50 rounds; ICRL Preset 90 %, Best-of-N 49 %)::

    OPENAI_API_KEY=... python benchmarks/bench_language.py --base-url https://api.openai.com/v1 \
        --model gpt-4.1 --mode chat --prompts paper --puzzles 100 --rounds 50 --me-rounds 5 \
        --llm-concurrency 8

(the defaults are the papers': 1000 completion tokens, judge 1024 tokens at temperature 0,
critiques, reflections and summaries 100 tokens, ME-ICPO k = entropy_k = final_k = 16).

On the embedded SmolLM2-135M (2 CPU cores: slow, and near-zero success — it shows the
pipeline, not the paper's numbers), shrunk explicitly::

    python benchmarks/bench_language.py --puzzles 10 --rounds 10 \
        --methods icrl-preset,best-of-n,me-icpo --max-tokens 64 --judge-tokens 16 \
        --helper-tokens 40 --k 2 --entropy-k 2 --final-k 2

Every run is a resumable run directory and every request is cached: a second invocation
replays in seconds, and a raised ``--rounds`` extends the finished runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path

from icpi.language import lang_config, load_methods, run_language
from icpi.llm import LLMConfig, LLMUnavailableError, stop_shared_server

PAPER_METHODS = (
    "icrl-preset", "icrl-autonomous", "best-of-n", "self-refine", "reflexion", "cot-only",
    "long-cot", "me-icpo",
)  # fmt: skip


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def row(method: str, summary: dict, run_dir: Path) -> dict:
    n = summary["problems"]
    solved = round(summary["final_success"] * n)
    lo, hi = wilson(solved, n)
    calls = [json.loads(x) for x in (run_dir / "llm_calls.jsonl").read_text().splitlines() if x]
    rewards = [r["mean_reward"] for r in summary["per_round"] if r["mean_reward"] is not None]
    return {
        "method": method,
        "puzzles": n,
        "rounds": summary["rounds"],
        "solved": solved,
        "success": summary["final_success"],
        "ci": (lo, hi),
        "last_round": summary["success_rate"][-1] if summary["success_rate"] else 0.0,
        "mean_reward": sum(rewards) / len(rewards) if rewards else 0.0,
        "tokens": summary["tokens_total"],
        "model_s": sum(c["latency_s"] for c in calls if not c.get("cached")),
        "me": (summary.get("final_k"), summary.get("mean_at_k"), summary.get("maj_at_k")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--puzzles", type=int, default=100, help="First N of the standard split.")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--me-rounds", type=int, help="ME-ICPO rounds (default: --rounds)")
    ap.add_argument("--methods", default=",".join(PAPER_METHODS))
    ap.add_argument("--base-url", help="OpenAI-compatible endpoint (default: embedded model)")
    ap.add_argument("--model")
    ap.add_argument("--mode", choices=("chat", "completion"), default="completion")
    ap.add_argument("--prompts", choices=("package", "paper"), default="package")
    ap.add_argument("--max-tokens", type=int, default=1000)
    ap.add_argument("--helper-tokens", type=int, default=100)
    ap.add_argument("--judge-tokens", type=int, default=1024)
    ap.add_argument("--step-judge", choices=("llm", "rule"), default="llm")
    ap.add_argument("--answer-judge", choices=("llm", "verifier"), default="llm")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--entropy-k", type=int, default=16)
    ap.add_argument("--final-k", type=int, default=16)
    ap.add_argument("--llm-concurrency", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=Path("bench-language"), help="Run directories (resumed)."
    )
    ap.add_argument("--cache", help="LLM cache file (default: the user cache)")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    methods = args.methods.split(",")
    known = load_methods()  # the registry fills on first use
    unknown = set(methods) - set(known)
    if unknown:
        ap.error(f"unknown methods {sorted(unknown)} (choose from {', '.join(known)})")
    llm = LLMConfig.from_sources(
        {
            "base_url": args.base_url,
            "model": args.model,
            "mode": args.mode,
            "cache_path": args.cache,
        }
    )
    t_all = time.perf_counter()
    rows = []
    try:
        for method in methods:
            me = method == "me-icpo"
            settings = {"k": args.k, "entropy_k": args.entropy_k, "final_k": args.final_k}
            cfg = lang_config(
                task="game24",
                method=method,
                problems=args.puzzles,
                rounds=(args.me_rounds or args.rounds) if me else args.rounds,
                seed=args.seed,
                max_tokens=args.max_tokens,
                helper_tokens=args.helper_tokens,
                judge_tokens=args.judge_tokens,
                prompts=args.prompts,
                step_judge=args.step_judge,
                answer_judge=args.answer_judge,
                chat=llm.mode == "chat",
                **(settings if me else {}),
            )
            t0 = time.perf_counter()
            for _try in range(5):  # a killed server stops the run; resume on a new one
                try:
                    summary = run_language(
                        cfg, args.out / method, llm=llm, concurrency=args.llm_concurrency
                    )
                    break
                except LLMUnavailableError as exc:
                    print(f"{method}: model unavailable ({exc}); resuming", flush=True)
                    stop_shared_server()
            else:
                raise SystemExit(f"{method}: the model stayed unavailable")
            rows.append(row(method, summary, args.out / method))
            print(f"done {method} in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        stop_shared_server()
    model = args.model or ("SmolLM2-135M-Instruct (embedded)" if not args.base_url else "?")
    print()
    print(
        f"Game of 24, standard split (ranks 901-1000), first {args.puzzles} puzzles; {model}, "
        f"{args.mode} mode, {args.prompts} prompts, temperature 0.6, top_p 0.95, max_tokens"
        f" {args.max_tokens}, judge {args.judge_tokens} tokens; "
        f"reward seen: steps by {args.step_judge}, bonus by {args.answer_judge}; "
        f"success by the exact verifier; load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'method':<16} {'rounds':>6} {'success (95% CI)':<24} {'last round':>10} "
        f"{'reward':>7} {'tokens':>9} {'model s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        lo, hi = r["ci"]
        succ = f"{r['solved']}/{r['puzzles']} = {r['success']:.2f} [{lo:.2f}, {hi:.2f}]"
        extra = ""
        k, mean, maj = r["me"]
        if k:
            extra = f"  Mean@{k} {mean:.2f} Maj@{k} {maj:.2f}"
        print(
            f"{r['method']:<16} {r['rounds']:>6} {succ:<24} {r['last_round']:>10.2f} "
            f"{r['mean_reward']:>7.2f} {r['tokens']:>9} {r['model_s']:>8.0f}{extra}"
        )
    print(
        "\nsuccess: puzzles solved in any round (running max after the last round, the "
        "paper's Table 1) with a 95% Wilson interval; last round: success of the last "
        "round alone; reward: mean reward the method saw per round (ME-ICPO: its "
        "majority-vote self-reward); tokens: every call (policy, judge, critiques, "
        "reflections, summaries, entropy and final samples); model s: live model time"
    )
    print(f"total wall time {time.perf_counter() - t_all:.0f} s; run directories in {args.out}")


if __name__ == "__main__":
    main()
