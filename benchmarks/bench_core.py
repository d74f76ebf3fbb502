"""Figures of the in-context core and the LLM layer.

Prints three figures, measured in one run:

1. Loop overhead per iteration, excluding the model call (goal ≤ 2 ms): the toy
   ICPI-shaped improver (k = 20 nearest of 300 examples, 3-decimal prompt, buffer persisted
   to disk) driven by an instant scripted model double; the per-iteration wall time minus
   the model and reward time.
2. The embedded model (SmolLM2-135M-Instruct on llama.cpp): seconds and tokens per query,
   for a short toy prompt (k = 10, 2-D) and an ICPI-sized prompt (20 lines of 3-D θ, 3-D e
   → 3-D Δθ), cache bypassed.
3. Replay from cache: the same toy run live through the embedded model, then again with
   ``offline=True`` (no HTTP at all); the speed-up of the replay.

4. icpi+'s arbiter: its own time per iteration (the outcome-model fits, the candidates,
   their scores, the records; no rollout, no model call) on slide-gc with an instant model
   double (goal ≤ 10 ms), and beside it everything but the rollout and the model call
   (with the prompt's retrieval and rendering).
5. The calibration proposer: one request of n = 4 through the real client (HTTP, no
   cache) once θ* is known (goal < 5 ms).

Usage: ``python benchmarks/bench_core.py [--repeats N] [--queries N] [--replay-iters N]
[--skip-llm]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from icpi.core import Budget, ExperienceBuffer, LLMSampler, LoopState, ScriptedSampler
from icpi.core.prompts import PromptTemplate
from icpi.core.samplers import copy_nearest_example
from icpi.core.toy import ToyLinearTask, hindsight_dataset, make_toy_improver


def loop_overhead(repeats: int, iterations: int, workdir: Path) -> dict[str, float]:
    task = ToyLinearTask.sample(0)
    data = hindsight_dataset(task, n_rollouts=30, max_examples=300)
    per_iter: list[float] = []
    in_step: list[float] = []
    for rep in range(repeats + 1):
        loop = make_toy_improver(
            task,
            ScriptedSampler(copy_nearest_example),
            dataset=data,
            k=20,
            precision=3,
            buffer=ExperienceBuffer(workdir / f"overhead-{rep}.jsonl"),
            seed=rep,
        )
        t0 = time.perf_counter()
        result = loop.run(Budget(max_iterations=iterations))
        wall = time.perf_counter() - t0
        if rep == 0:
            continue  # warm-up
        excluded = sum(a.timing["model_s"] + a.timing["reward_s"] for a in result.attempts)
        per_iter.append((wall - excluded) / len(result.attempts))
        in_step += [a.timing["overhead_s"] for a in result.attempts if a.prompt is not None]
    return {
        "per_iteration_ms_median": 1e3 * statistics.median(per_iter),
        "per_iteration_ms_max": 1e3 * max(per_iter),
        "in_step_ms_median": 1e3 * statistics.median(in_step),
        "in_step_ms_p95": 1e3 * float(np.percentile(in_step, 95)),
    }


def icpi_sized_prompt(seed: int) -> str:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "theta": rng.uniform(-1, 1, 3),
            "e": rng.uniform(-0.5, 0.5, 3),
            "dtheta": rng.uniform(-0.3, 0.3, 3),
        }
        for _ in range(20)
    ]
    template = PromptTemplate(
        header="Each line: theta (3 numbers), error e (3 numbers) -> correction dtheta.",
        example="{theta} {e} -> {dtheta}",
        query="{theta} {e} ->",
        query_fields=lambda s: {"theta": rng.uniform(-1, 1, 3), "e": rng.uniform(-0.5, 0.5, 3)},
    )
    out = template.render(LoopState(1, []), rows)
    assert isinstance(out, str)
    return out


def toy_prompt(seed: int) -> str:
    task = ToyLinearTask.sample(seed)
    loop = make_toy_improver(task, ScriptedSampler(["0 0"]), k=10)
    loop.run(Budget(max_iterations=2))
    prompt = loop.buffer.attempts[1].prompt
    assert isinstance(prompt, str)
    return prompt


def embedded_queries(n_queries: int, workdir: Path) -> dict[str, dict[str, float]]:
    from icpi.llm import LLMClient, LLMConfig, shared_server

    t0 = time.perf_counter()
    shared_server()
    start_s = time.perf_counter() - t0
    client = LLMClient(LLMConfig(use_cache=False))
    params = {"temperature": 0.3, "max_tokens": 16, "stop": ["\n"]}
    client.complete("1 2 3 ->", max_tokens=2)  # warm-up
    out: dict[str, dict[str, float]] = {"server": {"start_s": start_s}}
    for name, make in (("toy_k10", toy_prompt), ("icpi_k20", icpi_sized_prompt)):
        secs, ptok, ctok = [], [], []
        for q in range(n_queries):
            t = time.perf_counter()
            resp = client.complete(make(q), seed=q, **params)
            secs.append(time.perf_counter() - t)
            ptok.append(resp.prompt_tokens)
            ctok.append(resp.completion_tokens)
        out[name] = {
            "s_per_query": statistics.mean(secs),
            "prompt_tokens": statistics.mean(ptok),
            "completion_tokens": statistics.mean(ctok),
            "tokens_per_s": (sum(ptok) + sum(ctok)) / sum(secs),
        }
    client.close()
    return out


def replay_speedup(iterations: int, workdir: Path) -> dict[str, float]:
    from icpi.llm import LLMClient, LLMConfig

    task = ToyLinearTask.sample(7)
    cache = workdir / "replay-cache.sqlite3"
    params = {"temperature": 0.3, "max_tokens": 12, "stop": ["\n"]}
    walls = {}
    rewards = {}
    for mode in ("live", "offline"):
        client = LLMClient(LLMConfig(cache_path=cache, offline=mode == "offline"))
        loop = make_toy_improver(
            task,
            LLMSampler(client, **params),
            k=10,
            buffer=ExperienceBuffer(workdir / f"replay-{mode}.jsonl"),
        )
        t0 = time.perf_counter()
        result = loop.run(Budget(max_iterations=iterations))
        walls[mode] = time.perf_counter() - t0
        rewards[mode] = [a.reward for a in result.attempts]
        if mode == "offline":
            assert client.stats["http_requests"] == 0
        client.close()
    assert rewards["live"] == rewards["offline"], "replay differs from the live run"
    return {
        "live_s": walls["live"],
        "offline_s": walls["offline"],
        "speedup": walls["live"] / walls["offline"],
        "iterations": iterations,
    }


def arbiter_time(workdir: Path, seeds: int = 3) -> dict[str, float]:
    from icpi.manipulation.config import load_run_config
    from icpi.manipulation.run import run_method

    per_iter: list[float] = []
    own: list[float] = []
    for seed in range(seeds):
        cfg = load_run_config(
            {"task": "slide-gc", "method": "icpi+", "seed": seed, "iterations": 20}, {}
        )
        out = workdir / f"arbiter-{seed}"
        run_method(cfg, out, sampler=ScriptedSampler(copy_nearest_example))
        buffer = ExperienceBuffer(out / "attempts.jsonl")
        asked = [a for a in buffer.attempts if a.prompt is not None]
        per_iter += [a.timing["overhead_s"] for a in asked]
        own += [a.selection["arbiter_s"] for a in asked]
    return {
        "ms_median": 1e3 * statistics.median(own),
        "ms_p95": 1e3 * float(np.percentile(own, 95)),
        "with_prompt_ms_median": 1e3 * statistics.median(per_iter),
        "with_prompt_ms_p95": 1e3 * float(np.percentile(per_iter, 95)),
        "iterations": len(per_iter),
    }


def calibration_time(workdir: Path, requests: int = 50) -> dict[str, float]:
    from icpi.core.files import write_json
    from icpi.llm import LLMClient, LLMConfig
    from icpi.manipulation.calibration import OptimumStore, instance_tag, serve

    store = OptimumStore(workdir / "optima")
    store.folder.mkdir()
    # θ* known (the search itself takes seconds, once per instance)
    write_json(
        store.path("slide-gc", 0),
        {"task": "slide-gc", "seed": 0, "theta": [0.1, 0.2, 0.5], "cost": 0.0},
    )
    prompt = (
        "Parameters (permille of range) and error (mm), then the correction (permille of"
        " range) that fixes it:\n" + "500 500 500 12 -40 -> 3 -2 10\n" * 20 + "480 510 530 9 -7 ->"
    )
    with serve(0, store) as ep:
        client = LLMClient(
            LLMConfig(base_url=ep.base_url, model="calibration-sigma3", use_cache=False)
        )
        tag = {"extra_body": {"user": instance_tag("slide-gc", 0)}}
        client.complete(prompt, n=4, seed=0, **tag)  # warm-up: connection, task spec
        secs = []
        for q in range(requests):
            t = time.perf_counter()
            client.complete(prompt, n=4, seed=q, **tag)
            secs.append(time.perf_counter() - t)
        client.close()
    return {
        "ms_median": 1e3 * statistics.median(secs),
        "ms_p95": 1e3 * float(np.percentile(secs, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="Overhead runs of 20 iterations.")
    parser.add_argument("--queries", type=int, default=3, help="Embedded queries per prompt size.")
    parser.add_argument("--replay-iters", type=int, default=6, help="Iterations of the replay run.")
    parser.add_argument("--skip-llm", action="store_true", help="Only the loop overhead.")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results: dict[str, object] = {"cpus": os.cpu_count(), "load_before": load_before}
        ov = loop_overhead(args.repeats, 20, workdir)
        results["loop_overhead"] = ov
        print(
            "1. loop overhead per iteration (excl. model call): "
            f"{ov['per_iteration_ms_median']:.3f} ms median,"
            f" {ov['per_iteration_ms_max']:.3f} ms worst run (goal <= 2 ms); in-step"
            f" {ov['in_step_ms_median']:.3f} ms median, {ov['in_step_ms_p95']:.3f} ms p95"
        )
        arb = arbiter_time(workdir)
        results["arbiter"] = arb
        print(
            f"4. icpi+ arbiter per iteration (fits, candidates, scores, records):"
            f" {arb['ms_median']:.2f} ms median, {arb['ms_p95']:.2f} ms p95 (goal <= 10 ms);"
            f" with the prompt's retrieval and rendering (all but rollout and model call):"
            f" {arb['with_prompt_ms_median']:.2f} ms median, {arb['with_prompt_ms_p95']:.2f} ms"
            f" p95; {arb['iterations']} iterations"
        )
        cal = calibration_time(workdir)
        results["calibration"] = cal
        print(
            f"5. calibration proposer, n = 4 through the client: {cal['ms_median']:.2f} ms"
            f" median, {cal['ms_p95']:.2f} ms p95 (goal < 5 ms)"
        )
        if not args.skip_llm:
            emb = embedded_queries(args.queries, workdir)
            results["embedded"] = emb
            print(f"2. embedded SmolLM2-135M (server start {emb['server']['start_s']:.1f} s):")
            for name in ("toy_k10", "icpi_k20"):
                e = emb[name]
                print(
                    f"   {name}: {e['s_per_query']:.2f} s/query, {e['prompt_tokens']:.0f} prompt"
                    f" + {e['completion_tokens']:.0f} completion tokens,"
                    f" {e['tokens_per_s']:.0f} tok/s"
                )
            rep = replay_speedup(args.replay_iters, workdir)
            results["replay"] = rep
            print(
                f"3. replay from cache: live {rep['live_s']:.2f} s, offline"
                f" {rep['offline_s']:.3f} s for {rep['iterations']} iterations ->"
                f" {rep['speedup']:.0f}x faster, identical rewards"
            )
        results["load_after"] = os.getloadavg()[0]
        print(
            f"(1-min load average {load_before:.2f} before, {results['load_after']:.2f} after,"
            f" {os.cpu_count()} CPUs: other work on the machine slows figure 2 and the live run)"
        )
        print(json.dumps(results))


if __name__ == "__main__":
    main()
