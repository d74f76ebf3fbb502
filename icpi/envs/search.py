"""Derivative-free search for a good θ on one instance (tests check reachability with it)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from icpi.envs.base import Instance, Task


def search_theta(
    task: Task,
    instance: Instance,
    rng: np.random.Generator,
    n_random: int = 200,
    n_polish: int = 3,
    max_evals_per_polish: int = 300,
    tolerance: float = 1e-3,
) -> tuple[np.ndarray, float]:
    """Find θ with a low cost: random shooting, then Nelder–Mead from the best shots.

    Args:
        task: The task.
        instance: The instance to solve.
        rng: Random generator for the shots.
        n_random: Number of uniform random θ to try first (run as one batch).
        n_polish: How many of the best shots to polish at most.
        max_evals_per_polish: Rollout budget of each Nelder–Mead run.
        tolerance: Stop as soon as a cost below this is found [m].

    Returns:
        The best θ found and its cost.
    """
    spec = task.theta_spec
    low, span = spec.low_array, spec.high_array - spec.low_array
    shots = rng.uniform(spec.low_array, spec.high_array, size=(n_random, spec.dim))
    costs = np.array([r.cost for r in task.rollout_batch([instance], shots)])
    best_theta, best_cost = shots[int(np.argmin(costs))], float(costs.min())

    def cost_of(z: np.ndarray) -> float:
        return task.rollout(instance, low + np.clip(z, 0.0, 1.0) * span).cost

    for i in np.argsort(costs)[:n_polish]:
        if best_cost < tolerance:
            break
        res = minimize(
            cost_of,
            (shots[i] - low) / span,
            method="Nelder-Mead",
            options={"xatol": 1e-6, "fatol": 1e-6, "maxfev": max_evals_per_polish},
        )
        if res.fun < best_cost:
            best_theta, best_cost = low + np.clip(res.x, 0.0, 1.0) * span, float(res.fun)
    return best_theta, best_cost
