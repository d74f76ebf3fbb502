"""Rollout speed of every task.

Prints, per task: milliseconds per rollout (serial, through ``Task.rollout``); rollout
throughput as a ratio of the raw ``mj_step`` rate of the same model (stepping in C with
``mj_step(m, d, nstep)`` from the same initial states with the control held at the
stroke's end; goal ≥ 0.8); the same ratio against the same work stepped by hand
(``mj_step`` once per step with the rollout's own controls); and batch
throughput on 2 threads as a ratio of serial batch throughput (goal ≥ 1.7), checking
that the results are bit-identical.

Usage: ``python benchmarks/bench_envs.py [--rollouts N] [--batch N]``
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

from icpi.envs import TASKS, make_task


def bench(task_id: str, n_rollouts: int, n_batch: int) -> dict[str, float]:
    task = make_task(task_id)
    rng = np.random.default_rng(0)
    instance = task.sample_instance(rng)
    thetas = rng.uniform(task.theta_spec.low_array, task.theta_spec.high_array, size=(n_batch, 3))
    model = task.model(instance)
    task.rollout(instance, thetas[0])  # warm-up

    t0 = time.perf_counter()
    for theta in thetas[:n_rollouts]:
        task.rollout(instance, theta)
    per_rollout = (time.perf_counter() - t0) / n_rollouts

    # Raw rate: the same model, from the same initial states, stepped in C by
    # mj_step(nstep) with the control held at the stroke's end point (no Python per step).
    data = mujoco.MjData(model)
    scratch = mujoco.MjData(model)
    starts = []
    for theta in thetas[:n_rollouts]:
        qpos0, ctrl = task._plan(theta, model)
        starts.append((task.initial_state(model, scratch, qpos0)[0], ctrl[-1]))
    full = mujoco.mjtState.mjSTATE_FULLPHYSICS
    t0 = time.perf_counter()
    for state, last_ctrl in starts:
        mujoco.mj_resetData(model, data)
        mujoco.mj_setState(model, data, state, full)
        data.ctrl[:] = last_ctrl
        mujoco.mj_step(model, data, nstep=task.nstep)
    raw_per_rollout = (time.perf_counter() - t0) / n_rollouts

    # Same work: mj_step called once per step with the rollout's own controls, from the
    # same initial states (what stepping the model by hand costs, Python call included).
    plans = [task._plan(theta, model) for theta in thetas[:n_rollouts]]
    states = [task.initial_state(model, scratch, q)[0] for q, _ in plans]
    t0 = time.perf_counter()
    for state, (_, ctrl) in zip(states, plans, strict=True):
        mujoco.mj_resetData(model, data)
        mujoco.mj_setState(model, data, state, full)
        for u in ctrl:
            data.ctrl[:] = u
            mujoco.mj_step(model, data)
    same_work = (time.perf_counter() - t0) / n_rollouts

    t0 = time.perf_counter()
    serial = task.rollout_batch([instance], thetas, nthread=1)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    parallel = task.rollout_batch([instance], thetas, nthread=2)
    t_parallel = time.perf_counter() - t0
    identical = all(
        np.array_equal(a.trajectory, b.trajectory) for a, b in zip(serial, parallel, strict=True)
    )
    return {
        "ms_per_rollout": 1e3 * per_rollout,
        "raw_ms": 1e3 * raw_per_rollout,
        "ratio_raw": raw_per_rollout / per_rollout,
        "same_work_ms": 1e3 * same_work,
        "ratio_same_work": same_work / per_rollout,
        "batch_speedup": t_serial / t_parallel,
        "identical": float(identical),
        "steps": float(task.nstep),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=50, help="serial rollouts per task")
    parser.add_argument("--batch", type=int, default=200, help="rollouts per batch")
    args = parser.parse_args()
    header = (
        f"{'task':<15}{'steps':>6}{'ms/rollout':>12}{'raw mj_step ms':>16}"
        f"{'rate/raw':>10}{'per-step ms':>13}{'rate/per-step':>15}"
        f"{'2-thread/serial':>17}{'bit-identical':>15}"
    )
    print(header)
    for task_id in TASKS:
        r = bench(task_id, args.rollouts, args.batch)
        print(
            f"{task_id:<15}{int(r['steps']):>6}{r['ms_per_rollout']:>12.1f}{r['raw_ms']:>16.1f}"
            f"{r['ratio_raw']:>10.2f}{r['same_work_ms']:>13.1f}{r['ratio_same_work']:>15.2f}"
            f"{r['batch_speedup']:>17.2f}{bool(r['identical'])!s:>15}"
        )


if __name__ == "__main__":
    main()
