"""The collection design: instances, probes, anchors, perturbations, relabelling, selection.

See the package docstring (:mod:`icpi.manipulation.dataset`) for the design in words.
:func:`relabel_pairs` and :func:`dataset_from_rollouts` are public: the real arm's
recorded trials go through the very same relabelling and row assembly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from icpi.envs.spec import (
    SUCCESS_TOLERANCE,
    Instance,
    Rollout,
    SkillTask,
    TaskError,
    check_rollout,
)
from icpi.manipulation.dataset.table import (
    DatasetError,
    ImprovementDataset,
    build_meta,
    goal_dim,
)


@dataclass(frozen=True)
class SamplingDesign:
    """Parameters of the rollouts and of the selection (see the module docstring)."""

    examples_per_instance: int = 5
    """Instances = ceil(size / this): more instances, more spread of the hidden physics."""
    n_probe: int = 16
    """Uniform θ per instance."""
    n_anchor: int = 4
    """Probes that get local perturbations."""
    local_scales: tuple[float, ...] = (0.02, 0.05, 0.1)
    """Standard deviations of the perturbations, as fractions of each θ range."""
    goal_margin: float = 0.1
    """Growth of the goal region on each side, as a fraction of its span."""
    min_error: float = SUCCESS_TOLERANCE
    """Pairs whose ‖e‖ is below this [m] are dropped (θ_a already succeeds for g')."""
    bin_edges: tuple[float, ...] = (0.05, 0.15, 0.4)
    """Edges of the bins of r = ‖Δθ*/span‖ that share the selection equally."""

    @property
    def rollouts_per_instance(self) -> int:
        """Rollouts run on each instance."""
        return self.n_probe + self.n_anchor * len(self.local_scales)

    def n_instances(self, size: int) -> int:
        """Number of instances sampled for a dataset of ``size`` examples."""
        return max(1, math.ceil(size / self.examples_per_instance))

    def to_dict(self) -> dict[str, Any]:
        """The design as JSON-friendly values."""
        out = asdict(self)
        out["local_scales"] = list(self.local_scales)
        out["bin_edges"] = list(self.bin_edges)
        return out


DEFAULT_DESIGN = SamplingDesign()


# ---------------------------------------------------------------------------- collection
def instance_rng(seed: int, index: int) -> np.random.Generator:
    """RNG of one instance, derived from (seed, instance index) only.

    Args:
        seed: Dataset seed.
        index: Instance index.

    Returns:
        The generator (instance draw, probes and perturbations, in that order).
    """
    return np.random.default_rng(np.random.SeedSequence([seed, 0, index]))


def rollout_many(
    task: SkillTask, instances: Sequence[Instance], thetas: np.ndarray, nthread: int | None
) -> list[Rollout]:
    """Run many (instance, θ) pairs.

    In one threaded MuJoCo batch when the task offers ``rollout_batch`` (the shipped tasks
    do), else one after another.

    Args:
        task: The task.
        instances: One instance per θ.
        thetas: θ, one row each.
        nthread: Threads of a batch.

    Returns:
        The rollouts, in order.

    Raises:
        TaskError: If the task returns an invalid rollout (nothing of it is stored).
    """
    batch = getattr(task, "rollout_batch", None)
    if batch is not None:
        out: list[Rollout] = batch(instances, thetas, nthread=nthread)
    else:
        out = [task.rollout(inst, theta) for inst, theta in zip(instances, thetas, strict=True)]
    for inst, rollout in zip(instances, out, strict=True):
        check_rollout(task.task_id, inst, rollout)
    return out


def collect_instance(
    task: SkillTask,
    seed: int,
    indices: Sequence[int],
    design: SamplingDesign,
    nthread: int | None,
) -> list[dict[str, np.ndarray]]:
    """Run and relabel the rollouts of some instances (batched across them).

    Args:
        task: The task.
        seed: Dataset seed.
        indices: Instance indices.
        design: Sampling design.
        nthread: MuJoCo threads for the batches.

    Returns:
        Per instance, the arrays stored in its ``.rollouts`` file.
    """
    spec = task.theta_spec
    low, high = spec.low_array, spec.high_array
    span = high - low
    region_lo, region_hi = goal_region(task, design)
    rngs = [instance_rng(seed, i) for i in indices]
    instances = [task.sample_instance(rng) for rng in rngs]
    probes = [rng.uniform(low, high, size=(design.n_probe, spec.dim)) for rng in rngs]
    first = rollout_many(
        task,
        [inst for inst in instances for _ in range(design.n_probe)],
        np.concatenate(probes),
        nthread,
    )
    locals_: list[np.ndarray] = []
    for k, rng in enumerate(rngs):
        outs = np.array([r.outcome for r in first[k * design.n_probe : (k + 1) * design.n_probe]])
        dist = np.linalg.norm(
            np.maximum(0.0, np.maximum(region_lo - outs, outs - region_hi)), axis=1
        )
        anchors = probes[k][np.argsort(dist, kind="stable")[: design.n_anchor]]
        rows = [
            np.clip(anchor + rng.normal(0.0, scale * span), low, high)
            for anchor in anchors
            for scale in design.local_scales
        ]
        locals_.append(np.array(rows).reshape(-1, spec.dim))
    n_local = design.n_anchor * len(design.local_scales)
    second = rollout_many(
        task,
        [inst for inst in instances for _ in range(n_local)],
        np.concatenate(locals_),
        nthread,
    )
    results = []
    for k, instance in enumerate(instances):
        rollouts = (
            first[k * design.n_probe : (k + 1) * design.n_probe]
            + second[k * n_local : (k + 1) * n_local]
        )
        results.append(relabel_pairs(task, instance, rollouts, design, region_lo, region_hi))
    return results


def relabel_pairs(
    task: SkillTask,
    instance: Instance,
    rollouts: Sequence[Rollout],
    design: SamplingDesign,
    region_lo: np.ndarray,
    region_hi: np.ndarray,
) -> dict[str, np.ndarray]:
    """Hindsight relabelling of every ordered pair of rollouts of one instance.

    For rollouts a ≠ b, b's outcome becomes the goal g'; the pair is kept when g' lies in
    the (grown) goal region and θ_a does not already reach it (‖e‖ ≥ ``min_error``).

    Args:
        task: The task (its ``outcome`` of a path for a goal).
        instance: The instance of the rollouts.
        rollouts: The rollouts, with trajectories.
        design: Minimum error.
        region_lo: Lower corner of the grown goal region [m].
        region_hi: Upper corner [m].

    Returns:
        The arrays stored per instance: θ, outcome and cost of each rollout, the goal and
        physics of the instance, and per kept pair a, b and outcome_a(g').

    Raises:
        DatasetError: If a rollout carries no trajectory.
        TaskError: If the task's outcome of a path is not finite numbers of the goal's
            length.
    """
    paths = []
    for r in rollouts:
        if r.trajectory is None:
            raise DatasetError("hindsight relabelling needs the rollouts' trajectories")
        paths.append(r.trajectory)
    theta = np.array([r.theta for r in rollouts])
    outcome = np.array([r.outcome for r in rollouts])
    m = len(rollouts)
    pair_a: list[int] = []
    pair_b: list[int] = []
    pair_outcome: list[np.ndarray] = []
    for b in range(m):
        goal = outcome[b]
        if np.any(goal < region_lo) or np.any(goal > region_hi):
            continue
        for a in range(m):
            if a == b:
                continue
            out_a = np.asarray(task.outcome(paths[a], goal), dtype=np.float64)
            if out_a.shape != goal.shape or not np.all(np.isfinite(out_a)):
                raise TaskError(
                    f"task {task.task_id}'s outcome(trajectory, goal) returned"
                    f" {out_a.tolist()} for the goal {goal.tolist()}: it needs finite numbers,"
                    " one per goal coordinate"
                )
            if float(np.linalg.norm(out_a - goal)) < design.min_error:
                continue
            pair_a.append(a)
            pair_b.append(b)
            pair_outcome.append(out_a)
    g = len(instance.goal)
    return {
        "theta": theta,
        "outcome": outcome,
        "cost": np.array([r.cost for r in rollouts]),
        "goal": instance.goal_array,
        "physics_names": np.array([k for k, _ in instance.physics]),
        "physics": np.array([v for _, v in instance.physics], dtype=np.float64),
        "pair_a": np.array(pair_a, dtype=np.int64),
        "pair_b": np.array(pair_b, dtype=np.int64),
        "pair_outcome": np.array(pair_outcome, dtype=np.float64).reshape(-1, g),
    }


def goal_region(task: SkillTask, design: SamplingDesign) -> tuple[np.ndarray, np.ndarray]:
    """The task's goal region grown by ``design.goal_margin`` of its span on each side.

    Args:
        task: The task (its ``goal_low``, ``goal_high``; a task without them has no
            region: every relabelled goal is kept).
        design: The design.

    Returns:
        The lower and upper corners [m].
    """
    if getattr(task, "goal_low", None) is None or getattr(task, "goal_high", None) is None:
        inf = np.full(goal_dim(task), np.inf)
        return -inf, inf
    lo = np.asarray(task.goal_low, dtype=np.float64)  # type: ignore[attr-defined]
    hi = np.asarray(task.goal_high, dtype=np.float64)  # type: ignore[attr-defined]
    margin = design.goal_margin * (hi - lo)
    return lo - margin, hi + margin


# ---------------------------------------------------------------------------- selection
def select_rows(
    r: np.ndarray, instance: np.ndarray, size: int, edges: Sequence[float], seed: int
) -> np.ndarray:
    """Pick ``size`` candidates spread over bins of r and over instances.

    Args:
        r: Normalised step size of each candidate.
        instance: Instance of each candidate.
        size: How many to pick.
        edges: Bin edges of r.
        seed: Dataset seed (the selection uses the stream ``SeedSequence([seed, 1])``).

    Returns:
        Sorted indices of the picked candidates.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    bins = np.digitize(r, np.asarray(edges, dtype=np.float64))
    members = [np.flatnonzero(bins == k) for k in range(len(edges) + 1)]
    counts = [len(m) for m in members]
    alloc = [0] * len(members)
    remaining = size
    open_bins = [k for k, c in enumerate(counts) if c > 0]
    while remaining > 0 and open_bins:
        share, extra = divmod(remaining, len(open_bins))
        for j, k in enumerate(open_bins):
            take = min(counts[k] - alloc[k], share + (1 if j < extra else 0))
            alloc[k] += take
            remaining -= take
        open_bins = [k for k in open_bins if alloc[k] < counts[k]]
    chosen = []
    for k, idx in enumerate(members):
        order = rng.permutation(idx)
        seen: dict[int, int] = {}
        visit = np.empty(len(order), dtype=np.int64)
        for j, row in enumerate(order):
            inst = int(instance[row])
            visit[j] = seen.get(inst, 0)
            seen[inst] = visit[j] + 1
        chosen.append(order[np.argsort(visit, kind="stable")[: alloc[k]]])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def select_examples(
    task: SkillTask,
    per_instance: Sequence[dict[str, np.ndarray]],
    size: int,
    seed: int,
    design: SamplingDesign,
) -> ImprovementDataset:
    """Assemble the candidate pairs of all instances and select ``size`` rows.

    Args:
        task: The task (θ span, physics names).
        per_instance: The arrays of :func:`relabel_pairs`, one per instance, in order.
        size: Rows to select.
        seed: Dataset seed (selection stream).
        design: Bin edges of the selection.

    Returns:
        The dataset (without sidecar).

    Raises:
        DatasetError: If there are fewer candidates than ``size``.
    """
    span = task.theta_spec.high_array - task.theta_spec.low_array
    physics_names = sorted(getattr(task, "physics_ranges", None) or {})
    if per_instance and not physics_names:
        physics_names = [str(n) for n in per_instance[0]["physics_names"]]
    rows: dict[str, list[np.ndarray]] = {
        k: [] for k in ("theta", "dtheta", "outcome", "goal", "instance", "a", "b", "physics")
    }
    for index, arr in enumerate(per_instance):
        if list(arr["physics_names"]) != physics_names:
            raise DatasetError(f"instance {index}: physics {arr['physics_names']} unexpected")
        a, b = arr["pair_a"], arr["pair_b"]
        rows["theta"].append(arr["theta"][a])
        rows["dtheta"].append(arr["theta"][b] - arr["theta"][a])
        rows["outcome"].append(arr["pair_outcome"])
        rows["goal"].append(arr["outcome"][b])
        rows["instance"].append(np.full(len(a), index, dtype=np.int64))
        rows["a"].append(a)
        rows["b"].append(b)
        rows["physics"].append(np.tile(arr["physics"], (len(a), 1)))
    cat = {k: np.concatenate(v) for k, v in rows.items()}
    n_cand = len(cat["instance"])
    if n_cand < size:
        raise DatasetError(
            f"{task.task_id}: only {n_cand} candidate pairs for {size} examples; use more"
            " instances (a smaller SamplingDesign.examples_per_instance) or a smaller size"
        )
    r = np.linalg.norm(cat["dtheta"] / span, axis=1)
    pick = select_rows(r, cat["instance"], size, design.bin_edges, seed)
    outcome = cat["outcome"][pick]
    goal = cat["goal"][pick]
    return ImprovementDataset(
        task_id=task.task_id,
        theta=cat["theta"][pick],
        e=outcome - goal,
        dtheta=cat["dtheta"][pick],
        outcome=outcome,
        goal=goal,
        instance=cat["instance"][pick],
        physics={p: cat["physics"][pick, j] for j, p in enumerate(physics_names)},
        meta={},
        extra={
            "seed": np.full(len(pick), seed, dtype=np.int64),
            "rollout_a": cat["a"][pick],
            "rollout_b": cat["b"][pick],
        },
    )


def dataset_from_rollouts(
    task: SkillTask,
    instance: Instance,
    rollouts: Sequence[Rollout],
    seed: int = 0,
    source: str = "rollouts",
    design: SamplingDesign = DEFAULT_DESIGN,
) -> ImprovementDataset:
    """Hindsight-relabel rollouts of one instance into a dataset, keeping every usable pair.

    The real arm's recorded trials (and a run's own rollouts) go through the same
    relabelling and row assembly as a collected dataset: every ordered pair (a, b) whose
    relabelled goal (b's outcome) lies in the grown goal region and whose error is not
    already a success becomes a row.

    Args:
        task: The task whose θ spec, goal region and ``outcome`` apply (for the arm: its
            MuJoCo twin).
        instance: The instance the rollouts ran on.
        rollouts: Rollouts with their trajectories.
        seed: Recorded as the dataset seed.
        source: What the rollouts were, recorded in the sidecar's ``command``.
        design: Goal margin and minimum error of the relabelling.

    Returns:
        The dataset (not saved).

    Raises:
        DatasetError: If fewer than two rollouts or no usable pair are given.
    """
    if len(rollouts) < 2:
        raise DatasetError("hindsight relabelling needs at least two rollouts")
    lo, hi = goal_region(task, design)
    arrays = relabel_pairs(task, instance, rollouts, design, lo, hi)
    n = len(arrays["pair_a"])
    if n == 0:
        raise DatasetError("no rollout pair relabels into the goal region")
    dataset = select_examples(task, [arrays], n, seed, design)
    dataset.meta = build_meta(task, n, seed, design, 1, source)
    return dataset
