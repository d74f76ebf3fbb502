"""Model-free Δθ predictors from retrieved neighbours.

They are ICPI's documented fallback when the model gives no valid answer, and the
KNN-5 / linear KNN-20 baselines of the paper.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Vec = NDArray[np.float64]


def knn_mean(dtheta: ArrayLike) -> Vec:
    """Mean Δθ* of the neighbours (the paper's KNN baseline).

    Args:
        dtheta: Neighbours' corrections, one row each.

    Returns:
        Their mean.

    Raises:
        ValueError: If there are no neighbours.
    """
    d = np.atleast_2d(np.asarray(dtheta, float))
    if d.shape[0] == 0 or d.size == 0:
        raise ValueError("no neighbours to average")
    out: Vec = d.mean(axis=0)
    return out


def local_linear(
    features: ArrayLike, dtheta: ArrayLike, query: ArrayLike, ridge: float = 1e-3
) -> Vec:
    """Fit Δθ* ≈ W·[x, 1] on the neighbours and predict at the query (linear KNN).

    A small ridge penalty on W (not on the intercept) keeps the fit defined when the
    neighbours are fewer than the features or collinear; features are standardised first.

    Args:
        features: Neighbours' features (e.g. normalised [θ, e]), one row each.
        dtheta: Neighbours' corrections, one row each.
        query: The query's features.
        ridge: Penalty relative to the number of neighbours.

    Returns:
        The predicted Δθ.

    Raises:
        ValueError: If there are no neighbours or the shapes disagree.
    """
    x = np.atleast_2d(np.asarray(features, float))
    y = np.atleast_2d(np.asarray(dtheta, float))
    q = np.asarray(query, float).reshape(-1)
    if x.shape[0] == 0 or x.shape[0] != y.shape[0] or x.shape[1] != q.shape[0]:
        raise ValueError(f"bad shapes: features {x.shape}, dtheta {y.shape}, query {q.shape}")
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    xs = np.hstack([(x - mu) / sd, np.ones((x.shape[0], 1))])
    penalty = ridge * x.shape[0] * np.eye(xs.shape[1])
    penalty[-1, -1] = 0.0
    w = np.linalg.solve(xs.T @ xs + penalty, xs.T @ y)
    out: Vec = np.append((q - mu) / sd, 1.0) @ w
    return out
