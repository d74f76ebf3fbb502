"""Improvement datasets D of ``(θ, e) → Δθ*`` examples, built without an LLM.

A dataset is collected per task from rollouts on sampled instances and **hindsight
relabelling**: for two rollouts a, b of the same instance, pretend that b's outcome was the
goal, g' = outcome_b; then e = outcome_a(g') − g' and Δθ* = θ_b − θ_a (θ_a + Δθ* = θ_b hits
g' exactly on that instance). ``outcome_a(g')`` is ``task.outcome(path_a, g')``: the final
position for slide and ball roll, the point of the tip's path closest to g' for rope swing.

Sampling design (per instance i, RNG ``SeedSequence([seed, 0, i])``, so every instance is
the same whatever the worker count, the backend or the order in which instances finish):

1. ``n_probe`` θ uniform in the box (global exploration);
2. ``n_anchor`` anchors: the probes whose outcome lies closest to the goal region (inside
   it, grown by ``goal_margin`` of its span on each side, counts as distance 0; ties go to
   the earlier probe);
3. one local perturbation per anchor and scale in ``local_scales``: θ = clip(anchor +
   N(0, (scale·span)²)) (local corrections near useful θ).

Candidates are all ordered pairs (a, b), a ≠ b, of one instance whose relabelled goal g'
lies in the grown goal region and whose error is not already a success
(‖e‖ ≥ ``min_error``). Selection (RNG ``SeedSequence([seed, 1])``) spreads the examples
over the normalised step size r = ‖Δθ*/span‖: candidates fall into bins with edges
``bin_edges``, each non-empty bin gets an equal share of N (the share of a bin that runs
short goes to the others), and within a bin candidates are taken in a random order that
visits every instance before taking a second example from any. The selected rows are
stored in (instance, a, b) order.

On disk (:mod:`~icpi.manipulation.dataset.table`) a dataset is a directory with
``examples.parquet`` (flat columns) and ``meta.json`` (task, θ names/units/bounds, goal
axes, the definition of e, size, seed, the sampling design, package versions, the command
line, the table's sha256). Nothing in either file depends on the time or the host, so the
same command regenerates both bit for bit on one machine (within a stated tolerance on
another CPU: :func:`compare_datasets`).

Modules: :mod:`~icpi.manipulation.dataset.table` (format, validation, rebuild check),
:mod:`~icpi.manipulation.dataset.design` (sampling design, relabelling, selection),
:mod:`~icpi.manipulation.dataset.collect` (local and Ray collection, shipped defaults).

Collection is resumable: each finished instance's rollouts and candidate pairs are
written atomically to ``DIR/.rollouts/instance_NNNNN.npz`` and skipped on restart.
"""

from icpi.manipulation.dataset.collect import (
    DEFAULT_SIZE,
    collect_dataset,
    datasets_root,
    default_dataset_dir,
    load_default_dataset,
    regeneration_command,
)
from icpi.manipulation.dataset.design import (
    DEFAULT_DESIGN,
    SamplingDesign,
    collect_instance,
    dataset_from_rollouts,
    goal_region,
    instance_rng,
    relabel_pairs,
    select_examples,
    select_rows,
)
from icpi.manipulation.dataset.table import (
    REBUILD_ATOL,
    REBUILD_RTOL,
    DatasetComparison,
    DatasetError,
    ImprovementDataset,
    compare_datasets,
    package_versions,
)

__all__ = [
    "DEFAULT_DESIGN",
    "DEFAULT_SIZE",
    "REBUILD_ATOL",
    "REBUILD_RTOL",
    "DatasetComparison",
    "DatasetError",
    "ImprovementDataset",
    "SamplingDesign",
    "collect_dataset",
    "collect_instance",
    "compare_datasets",
    "dataset_from_rollouts",
    "datasets_root",
    "default_dataset_dir",
    "goal_region",
    "instance_rng",
    "load_default_dataset",
    "package_versions",
    "regeneration_command",
    "relabel_pairs",
    "select_examples",
    "select_rows",
]
