"""The report's figures (matplotlib, written as SVG data URIs)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from icpi.report.media import data_uri

FIG_WIDTH = 10.0  # in
PANEL_HEIGHT = 2.8  # in, per row of panels
# Lower limit of log-scale bands [m].
LOG_FLOOR = 1e-5


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_iterations(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _svg_uri(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    _pyplot().close(fig)
    return data_uri("image/svg+xml", buf.getvalue().encode("utf-8"))


def _band(ax: Any, its: list[int], values: list[list[float]], label: str, color: Any) -> None:
    """The mean and its bootstrap 95 % interval, as ``curves.png`` and the tables have it."""
    from icpi.manipulation.bench import bootstrap_ci

    mean = np.array([float(np.mean(v)) for v in values])
    band = np.array([bootstrap_ci(v) for v in values])
    ax.plot(its, mean, marker=".", label=label, color=color)
    ax.fill_between(its, np.maximum(band[:, 0], LOG_FLOOR), band[:, 1], color=color, alpha=0.15)


def benchmark_curves(rows: Sequence[dict[str, Any]], tasks: Sequence[str]) -> str:
    """Best-so-far and cost per iteration per task and method, with 95 % intervals.

    Each line is the mean over instances and its band the bootstrap 95 % interval
    (:func:`icpi.manipulation.bench.bootstrap_ci`, the convention of ``curves.png`` and
    ``summary.md``).

    Args:
        rows: One row per iteration of every run (``task``, ``method``, ``seed``,
            ``iteration``, ``cost``, ``best_so_far``), as the benchmark collects them.
        tasks: Row order of the panels.

    Returns:
        The figure as an SVG data URI.
    """
    plt = _pyplot()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    with plt.rc_context({"svg.fonttype": "none"}):
        fig, axes = plt.subplots(
            len(tasks), 2, figsize=(FIG_WIDTH, PANEL_HEIGHT * len(tasks)), squeeze=False
        )
        for row_axes, task in zip(axes, tasks, strict=True):
            for col, (key, title) in enumerate(
                (("best_so_far", "best so far"), ("cost", "cost of iteration i (final cost at i)"))
            ):
                ax = row_axes[col]
                for m in methods:
                    pts: dict[int, list[float]] = {}
                    for r in rows:
                        if r["task"] == task and r["method"] == m:
                            pts.setdefault(int(r["iteration"]), []).append(float(r[key]))
                    if pts:
                        its = sorted(pts)
                        _band(ax, its, [pts[i] for i in its], m, colors[m])
                ax.set_title(f"{task}: {title}", fontsize=10)
                ax.set_xlabel("iteration")
                _integer_iterations(ax)
                ax.set_ylabel("cost [m]")
                ax.set_yscale("log")
                ax.grid(True, alpha=0.3)
        axes[0][1].legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        return _svg_uri(fig)


def run_curves(
    records: Sequence[dict[str, Any]],
    theta_names: Sequence[str],
    theta_low: Sequence[float] | None,
    theta_high: Sequence[float] | None,
) -> str:
    """One run: cost and best so far, θ (percent of its range) and e per iteration.

    Args:
        records: The run's records (``cost`` required; ``theta``, ``e`` optional).
        theta_names: Names of θ's components.
        theta_low: Lower bounds of θ (``None``: plot θ in its own units).
        theta_high: Upper bounds of θ.

    Returns:
        The figure as an SVG data URI.
    """
    plt = _pyplot()
    its = [int(r.get("iteration", i)) for i, r in enumerate(records)]
    costs = [float(r["cost"]) for r in records]
    with plt.rc_context({"svg.fonttype": "none"}):
        fig, (ax_c, ax_t, ax_e) = plt.subplots(1, 3, figsize=(FIG_WIDTH, PANEL_HEIGHT))
        ax_c.plot(its, costs, marker=".", label="cost")
        ax_c.plot(its, np.minimum.accumulate(costs), label="best so far")
        ax_c.set_yscale("log")
        ax_c.set_ylabel("cost [m]")
        ax_c.legend(fontsize=8)
        with_theta = [(i, r["theta"]) for i, r in zip(its, records, strict=True) if "theta" in r]
        if with_theta:
            theta = np.array([t for _, t in with_theta], float)
            scaled = theta_low is not None and theta_high is not None
            if scaled:
                low, high = np.asarray(theta_low, float), np.asarray(theta_high, float)
                theta = 100.0 * (theta - low) / (high - low)
            for j in range(theta.shape[1]):
                name = theta_names[j] if j < len(theta_names) else f"θ{j}"
                ax_t.plot([i for i, _ in with_theta], theta[:, j], marker=".", label=name)
            ax_t.set_ylabel("θ [% of range]" if scaled else "θ")
            ax_t.legend(fontsize=8)
        with_e = [(i, r["e"]) for i, r in zip(its, records, strict=True) if "e" in r]
        if with_e:
            e = np.array([v for _, v in with_e], float)
            for j in range(e.shape[1]):
                ax_e.plot([i for i, _ in with_e], e[:, j], marker=".", label=f"e{j}")
            ax_e.axhline(0.0, color="grey", lw=0.8)
            ax_e.set_ylabel("e = outcome − goal [m]")
            ax_e.legend(fontsize=8)
        for ax, title in ((ax_c, "cost"), (ax_t, "θ"), (ax_e, "relative error")):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("iteration")
            _integer_iterations(ax)
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        return _svg_uri(fig)


def trajectory_plot(
    trajectory: Any, goal: Sequence[float], outcome: Sequence[float], title: str = ""
) -> str:
    """The path of a rollout's tracked point, its goal and outcome (tasks that cannot render).

    The path's first two columns are drawn against each other (one column: against the
    step); a goal and outcome of two or more numbers are points in that plane, of one
    number vertical lines at that first coordinate.

    Args:
        trajectory: The path, one row per recorded step.
        goal: The goal.
        outcome: The outcome.
        title: Figure title.

    Returns:
        The figure as an SVG data URI (320 × 240 px, like a clip).
    """
    plt = _pyplot()
    path = np.asarray(trajectory, float)
    path = path.reshape(len(path), -1)
    goal_arr, out_arr = np.atleast_1d(goal).astype(float), np.atleast_1d(outcome).astype(float)
    with plt.rc_context({"svg.fonttype": "none"}):
        fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=100)
        if path.shape[1] >= 2:
            ax.plot(path[:, 0], path[:, 1], lw=1.2, label="path")
            ax.set(xlabel="path[:, 0]", ylabel="path[:, 1]")
        else:
            ax.plot(np.arange(len(path)), path[:, 0], lw=1.2, label="path")
            ax.set(xlabel="step", ylabel="path")
        for point, style, label in ((goal_arr, "x", "goal"), (out_arr, "o", "outcome")):
            if len(point) >= 2 and path.shape[1] >= 2:
                ax.plot(point[0], point[1], style, ms=7, label=label)
            elif len(point) >= 1:
                line = ax.axvline if path.shape[1] >= 2 else ax.axhline
                line(point[0], ls="--" if label == "goal" else ":", lw=1, label=label,
                     color="C1" if label == "goal" else "C2")  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        return _svg_uri(fig)


def round_curves(per_round: Sequence[dict[str, Any]], title: str = "") -> str:
    """A language run per round: success rate and running-max success, and the mean reward.

    Args:
        per_round: ``summary.json``'s ``per_round`` entries (``round``, ``success_rate``,
            ``running_max_success``, ``mean_reward``).
        title: Figure title.

    Returns:
        The figure as an SVG data URI.
    """
    plt = _pyplot()
    rounds = [int(r["round"]) for r in per_round]
    with plt.rc_context({"svg.fonttype": "none"}):
        fig, (left, right) = plt.subplots(1, 2, figsize=(FIG_WIDTH, PANEL_HEIGHT))
        left.plot(rounds, [r["running_max_success"] for r in per_round], marker=".",
                  label="running max (solved by round i)")  # fmt: skip
        left.plot(rounds, [r["success_rate"] for r in per_round], marker=".",
                  label="success in round i")  # fmt: skip
        left.set(xlabel="round", ylabel="share of problems", ylim=(-0.02, 1.02))
        left.legend(fontsize=8)
        rewards = [(i, r["mean_reward"]) for i, r in zip(rounds, per_round, strict=True)
                   if r.get("mean_reward") is not None]  # fmt: skip
        right.plot([i for i, _ in rewards], [v for _, v in rewards], marker=".")
        right.set(xlabel="round", ylabel="mean reward the method saw")
        for ax in (left, right):
            _integer_iterations(ax)
            ax.grid(alpha=0.3)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return _svg_uri(fig)
