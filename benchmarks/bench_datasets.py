"""Build time of every task's improvement dataset, and a bit-for-bit check against datasets/.

For each task, builds the default dataset (size 300, seed 0, the shipped command line
recorded in the sidecar) into a temporary folder, prints the wall time, the rollouts per
second, and whether both files are byte-identical to the shipped ones (sha256).

Usage: ``python benchmarks/bench_datasets.py [--tasks slide,rope-swing] [--size N]
[--workers N] [--backend local|ray]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from icpi.envs import TASKS
from icpi.manipulation.dataset import (
    DEFAULT_DESIGN,
    DEFAULT_SIZE,
    collect_dataset,
    default_dataset_dir,
    regeneration_command,
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--backend", default="local")
    args = parser.parse_args()
    print(
        f"{'task':14s} {'seconds':>8s} {'rollouts':>9s} {'rollouts/s':>11s}  identical to shipped"
    )
    for task_id in args.tasks.split(","):
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
                same = all(
                    sha(out / f) == sha(shipped / f) for f in ("examples.parquet", "meta.json")
                )
                verdict = "yes" if same else "NO"
            else:
                verdict = "n/a"
        print(
            f"{task_id:14s} {seconds:8.1f} {n_rollouts:9d} {n_rollouts / seconds:11.0f}  {verdict}"
        )


if __name__ == "__main__":
    main()
