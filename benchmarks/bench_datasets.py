"""Build time of every task's improvement dataset, and a rebuild check against datasets/.

For each task, builds the default dataset (size 300, seed 0, the shipped command line
recorded in the sidecar) into a temporary folder, prints the wall time, the rollouts per
second, and how the rebuild compares with the shipped copy: bit-identical (the promise on
the machine that built it) or within the stated tolerance (any other CPU; see
``icpi.manipulation.dataset.compare_datasets`` and datasets/README.md).

Then how much each task amplifies a last-bit difference (what another CPU's SIMD paths
change): on the first 30 instances of the dataset's streams, 56 uniform θ each, the
largest move of an outcome when θ moves by one ulp, against the stated rebuild tolerance
(``REBUILD_ATOL``; contacts make ``ball-roll-gc`` the most sensitive).

Then a usefulness check of each shipped dataset, no LLM involved: on 8 fresh instances
(not among the dataset's), KNN-5 (θ += mean Δθ* of the 5 examples nearest to [θ, e] in
normalised units) from a uniform θ for 10 rollouts, against the best of 10 uniform θ.
Both columns give the best cost of 10 rollouts [m], median over the instances.

Usage: ``python benchmarks/bench_datasets.py [--tasks slide,rope-swing] [--size N]
[--workers N] [--backend local|ray] [--no-rebuild] [--no-sensitivity]
[--sensitivity-instances N] [--no-knn]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from icpi.envs import TASKS, make_task
from icpi.manipulation.dataset import (
    DEFAULT_DESIGN,
    DEFAULT_SIZE,
    REBUILD_ATOL,
    ImprovementDataset,
    collect_dataset,
    compare_datasets,
    default_dataset_dir,
    load_default_dataset,
    regeneration_command,
)
from icpi.manipulation.dataset.design import instance_rng


def last_bit_sensitivity(task_id: str, n_instances: int = 30, n_theta: int = 56) -> float:
    """Largest move of an outcome [m] when θ moves by one ulp (rollouts on 2 threads)."""
    task = make_task(task_id)
    low, high = task.theta_spec.low_array, task.theta_spec.high_array
    worst = 0.0
    for i in range(n_instances):
        rng = instance_rng(0, i)
        instance = task.sample_instance(rng)
        thetas = rng.uniform(low, high, size=(n_theta, low.size))
        base = task.rollout_batch([instance], thetas, nthread=2)
        moved = task.rollout_batch([instance], np.nextafter(thetas, np.inf), nthread=2)
        for a, b in zip(base, moved, strict=True):
            worst = max(worst, float(np.abs(a.outcome - b.outcome).max()))
    return worst


def knn_check(task_id: str, n_instances: int = 8, n_iter: int = 10) -> tuple[float, float]:
    ds = load_default_dataset(task_id)
    task = make_task(task_id)
    low, high = task.theta_spec.low_array, task.theta_spec.high_array
    scale = ds.e.std(axis=0).mean()
    features = np.hstack([(ds.theta - low) / (high - low), ds.e / scale])
    rng = np.random.default_rng(1234)  # not the dataset's instance streams
    knn, rand = [], []
    for _ in range(n_instances):
        instance = task.sample_instance(rng)
        theta, best = task.theta_spec.sample(rng), np.inf
        for _ in range(n_iter):
            r = task.rollout(instance, theta)
            best = min(best, r.cost)
            query = np.hstack([(theta - low) / (high - low), r.e / scale])
            nearest = np.argsort(np.linalg.norm(features - query, axis=1))[:5]
            theta = np.clip(theta + ds.dtheta[nearest].mean(axis=0), low, high)
        knn.append(best)
        shots = rng.uniform(low, high, size=(n_iter, low.size))
        rand.append(min(r.cost for r in task.rollout_batch([instance], shots)))
    return float(np.median(knn)), float(np.median(rand))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--no-rebuild", action="store_true", help="Skip the rebuilds.")
    parser.add_argument("--no-sensitivity", action="store_true", help="Skip the ulp check.")
    parser.add_argument(
        "--sensitivity-instances", type=int, default=30, help="Instances of the ulp check."
    )
    parser.add_argument("--no-knn", action="store_true", help="Skip the usefulness check.")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    if not args.no_rebuild:
        rebuilds(tasks, args)
    if not args.no_sensitivity:
        print(f"\n{'task':14s} {'max |Δ outcome| [m]':>20s}  (θ moved by one ulp; tolerance"
              f" {REBUILD_ATOL:g} m)")  # fmt: skip
        for task_id in tasks:
            worst = last_bit_sensitivity(task_id, args.sensitivity_instances)
            print(f"{task_id:14s} {worst:20.3g}  margin {REBUILD_ATOL / max(worst, 1e-300):.0f}")
    if args.no_knn:
        return
    print(f"\n{'task':14s} {'KNN-5 with D':>13s} {'random':>8s}   (best cost of 10 rollouts [m])")
    for task_id in tasks:
        knn, rand = knn_check(task_id)
        print(f"{task_id:14s} {knn:13.4f} {rand:8.4f}")


def rebuilds(tasks: list[str], args: argparse.Namespace) -> None:
    """Rebuild each task's dataset and compare it with the shipped copy."""
    print(f"{'task':14s} {'seconds':>8s} {'rollouts':>9s} {'rollouts/s':>11s}  rebuild vs shipped")
    for task_id in tasks:
        shipped = default_dataset_dir(task_id)
        meta_path = shipped / "meta.json"
        command = regeneration_command(task_id, f"datasets/{task_id}", args.size, 0)
        if meta_path.is_file():
            command = json.loads(meta_path.read_text())["command"]
        n_rollouts = DEFAULT_DESIGN.n_instances(args.size) * DEFAULT_DESIGN.rollouts_per_instance
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / task_id
            t0 = time.perf_counter()
            collect_dataset(
                task_id,
                out,
                size=args.size,
                seed=0,
                workers=args.workers,
                backend=args.backend,
                progress=False,
                command=command,
            )
            seconds = time.perf_counter() - t0
            if meta_path.is_file() and args.size == DEFAULT_SIZE:
                cmp = compare_datasets(
                    ImprovementDataset.load(out), ImprovementDataset.load(shipped)
                )
                verdict = cmp.describe()
            else:
                verdict = "n/a"
        print(
            f"{task_id:14s} {seconds:8.1f} {n_rollouts:9d} {n_rollouts / seconds:11.0f}  {verdict}"
        )


if __name__ == "__main__":
    main()
