"""The θ box an arm can execute: every θ of a grid planned and checked against its limits.

    python -m icpi.robot.theta_box launch/params/ur5e.yaml [--grid 5] [--home-xy -0.25 0]

Reads the ``icpi_arm`` parameters of a params YAML (the arm, its limits and timing),
plans the trial of each θ on a grid over the task's θ bounds from the home pose at rest
(:func:`~icpi.robot.skill.plan_trial`) and checks it (:meth:`~icpi.robot.skill.Limits.check`,
the arm node's own check). It prints how many were accepted, why the others were refused,
and the largest axis-aligned box of grid points that are all accepted: the θ box to
document for the arm (the shipped YAMLs quote it). With ``--home-xy`` it first prints the
home joint positions that put the effector at that point (IK from the YAML's ``home``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import logging
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from icpi.robot.params import SkillNodeConfig
from icpi.robot.skill import State, Unreachable, plan_trial, skill_task

log = logging.getLogger(__name__)


def arm_config(path: Path, node: str = "icpi_arm") -> SkillNodeConfig:
    """The skill node's configuration from a params YAML (keys ``/**/<node>``).

    Args:
        path: The YAML file.
        node: The node name.

    Returns:
        The configuration (unknown keys such as ``use_sim_time`` are skipped).

    Raises:
        KeyError: If the file has no section for the node.
    """
    doc = yaml.safe_load(path.read_text())
    for key, section in doc.items():
        if key.split("/")[-1] == node:
            params = section["ros__parameters"]
            names = {f.name for f in dataclasses.fields(SkillNodeConfig)}
            return SkillNodeConfig(**{k: v for k, v in params.items() if k in names})
    raise KeyError(f"{path} has no /**/{node} section")


def check_grid(cfg: SkillNodeConfig, n: int) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Plan and check every θ of an n-per-axis grid over the task's θ bounds.

    Args:
        cfg: The skill node's configuration.
        n: Grid points per θ axis.

    Returns:
        The grid axes, the accepted mask (n, ..., n) and the refusal reasons.
    """
    spec = skill_task(cfg.skill).theta_spec
    axes = [np.linspace(lo, hi, n) for lo, hi in zip(spec.low, spec.high, strict=True)]
    arm, limits, timing = cfg.arm(), cfg.limits(), cfg.timing()
    start = State.at_rest(cfg.home)
    ok = np.zeros((n,) * spec.dim, dtype=bool)
    reasons: list[str] = []
    for idx in itertools.product(range(n), repeat=spec.dim):
        theta = [ax[i] for ax, i in zip(axes, idx, strict=True)]
        try:
            plan = plan_trial(cfg.skill, theta, arm, start, timing)
        except Unreachable as err:
            reasons.append(f"unreachable: {err}")
            continue
        violations = limits.check_plan(arm, plan)
        ok[idx] = not violations
        reasons.extend(violations[:1])
    return axes, ok, reasons


def largest_box(ok: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """The grid box (index ranges per axis) of largest volume, all its points accepted.

    Volume counts grid cells (a box flat along an axis has none); between equal volumes,
    and when every accepted box is flat, the box with more points wins.

    Args:
        ok: Accepted mask over the grid.

    Returns:
        ``((lo, hi), ...)`` inclusive index ranges, or ``None`` when nothing is accepted.
    """
    best, best_size = None, (0, 0)
    ranges = [[(a, b) for a in range(m) for b in range(a, m)] for m in ok.shape]
    for box in itertools.product(*ranges):
        size = (
            int(np.prod([b - a for a, b in box])),
            int(np.prod([b - a + 1 for a, b in box])),
        )
        if size <= best_size:
            continue
        if ok[tuple(slice(a, b + 1) for a, b in box)].all():
            best, best_size = box, size
    return best


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m icpi.robot.theta_box``."""
    out = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    out.add_argument("params", type=Path, help="params YAML with an icpi_arm section")
    out.add_argument("--grid", type=int, default=5, help="grid points per θ axis")
    out.add_argument("--home-xy", type=float, nargs=2, help="print the IK home for this xy")
    return out


def main(argv: list[str] | None = None) -> int:
    """Console entry (``python -m icpi.robot.theta_box``).

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        Exit code (1 when no θ of the grid is accepted).
    """
    args = parser().parse_args(argv)
    cfg = arm_config(args.params)
    if args.home_xy is not None:
        home = cfg.arm().ik(np.asarray(args.home_xy), seed=np.asarray(cfg.home))
        print(f"home for effector at {args.home_xy}: {np.round(home, 6).tolist()}")
        cfg.home = home.tolist()
    spec = skill_task(cfg.skill).theta_spec
    axes, ok, reasons = check_grid(cfg, args.grid)
    print(f"{args.params}: {int(ok.sum())} of {ok.size} θ on a {args.grid}^{spec.dim} grid pass")
    kinds: Any = collections.Counter(re.sub(r"[-\d.]+", "#", r.split(" at ")[0]) for r in reasons)
    for why, count in kinds.most_common(6):
        print(f"  refused {count:4d}: {why}")
    box = largest_box(ok)
    if box is None:
        print("no θ of the grid is executable")
        return 1
    for name, unit, ax, (a, b) in zip(spec.names, spec.units, axes, box, strict=True):
        print(f"  {name:16s} [{ax[a]:.4g}, {ax[b]:.4g}] {unit}")
    low = [float(ax[a]) for ax, (a, _) in zip(axes, box, strict=True)]
    high = [float(ax[b]) for ax, (_, b) in zip(axes, box, strict=True)]
    print(f"theta_box: {low + high}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
