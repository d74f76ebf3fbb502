"""One method spec, five front ends: the same run of your own task everywhere.

Runs ``examples/throw.py`` (a numpy task) with one method spec through ``icpi run``,
``icpi bench``, ``icpi report``, ``api.improve`` and the Optuna sampler ``ICPISampler``,
and prints what each did: the θ sequences are the same (a model's answers come from one
completion cache, so they are the same too), and so are the costs::

    python examples/one_spec.py --spec 'icpi+' --iterations 8 --out one-spec/
    python examples/one_spec.py --spec 'icpi+[model=off]'        # no model: seconds

Every front end takes the spec as written; nothing is translated between them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASK = f"{HERE / 'throw.py'}:ThrowTask"


def thetas(run_dir: Path) -> list[list[float]]:
    """The θ of every rollout of a run directory."""
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return [json.loads(line)["theta"] for line in lines]


def icpi(*argv: str) -> str:
    """The ``icpi`` command, as a user types it; its standard output."""
    command = [str(Path(sys.executable).parent / "icpi"), "--log-level", "WARNING", *argv]
    print("$ icpi " + shlex.join(argv), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"icpi {argv[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> int:
    """Run the five front ends and compare them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="icpi+", help="The method spec (default: icpi+).")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=100, help="Dataset examples.")
    parser.add_argument("--out", type=Path, default=Path("one-spec"))
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ICPI_LLM_CACHE", str(out / "llm-cache.sqlite3"))
    import optuna

    from icpi import api
    from icpi.integrations.optuna_sampler import ICPISampler, objective_for

    task = api.task_of(TASK)
    data = out / "data"
    if not (data / "meta.json").exists():
        api.collect(task, data, size=args.size, seed=0)
    common = ["--dataset", str(data), "--seed", str(args.seed)]
    common += ["--iterations", str(args.iterations)]
    seqs: dict[str, list[list[float]]] = {}
    costs: dict[str, float] = {}

    # 1. icpi run
    summary = json.loads(icpi("run", "--task", TASK, "--method", args.spec, *common,
                              "--out", str(out / "run")))  # fmt: skip
    seqs["icpi run"], costs["icpi run"] = thetas(out / "run"), summary["best_cost"]
    # 2. icpi bench (one task, one spec, one seed)
    bench = ["bench", "--tasks", TASK, "--methods", args.spec, "--seeds", str(args.seed)]
    bench += ["--dataset", str(data), "--iterations", str(args.iterations)]
    print(icpi(*bench, "--out", str(out / "bench"), "--no-progress").split("\n\n")[1])
    (run_dir,) = (out / "bench" / "runs").glob(f"*/*/seed-{args.seed}")
    seqs["icpi bench"] = thetas(run_dir)
    costs["icpi bench"] = json.loads((run_dir / "summary.json").read_text())["best_cost"]
    # 3. icpi report of the benchmark
    print(icpi("report", str(out / "bench"), "--max-videos", "2").strip().splitlines()[0])
    # 4. the Python API
    done = api.improve(task, out / "api", method=args.spec, dataset=data, seed=args.seed,
                       iterations=args.iterations)  # fmt: skip
    seqs["api.improve"], costs["api.improve"] = thetas(out / "api"), done["best_cost"]
    # 5. the Optuna sampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = ICPISampler(task, method=args.spec, dataset=str(data), seed=args.seed,
                          n_trials=args.iterations)  # fmt: skip
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective_for(task, sampler.instance), n_trials=args.iterations)
    seqs["ICPISampler"] = [[t.params[n] for n in sampler.names] for t in study.trials]
    costs["ICPISampler"] = study.best_value

    reference = seqs["icpi run"]
    print(f"\nspec {args.spec!r}, task throw, seed {args.seed}, {args.iterations} rollouts:")
    print(f"{'front end':14s} {'best cost [m]':>14s}  same θ sequence as icpi run")
    for name, seq in seqs.items():
        same = "yes" if seq == reference else "NO"
        print(f"{name:14s} {costs[name]:14.6g}  {same}")
    return 0 if all(seq == reference for seq in seqs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
