"""Smoke test of ``icpi demo`` and of rendering."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np

import icpi  # noqa: F401

ICPI = str(Path(sys.executable).parent / "icpi")  # the installed console script


def test_demo_writes_costs_and_gif(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "icpi.cli.main",
            "demo",
            "--tasks",
            "slide,rope-swing",
            "--rollouts",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / "costs.csv")))
    assert [r["task"] for r in rows] == ["slide", "slide", "rope-swing", "rope-swing"]
    assert all(float(r["cost_m"]) > 0 for r in rows)
    assert "slide" in proc.stdout and "cost" in proc.stdout
    frames = iio.imread(out / "slide.gif")
    assert frames.ndim == 4 and frames.shape[1:] == (240, 320, 3)
    assert frames.std() > 5  # a real picture, not a blank frame


def test_demo_rejects_unknown_task(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "icpi.cli.main",
            "demo",
            "--tasks",
            "juggle",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown task" in proc.stderr


def test_env_render_shows_the_rollout():
    env = gym.make("icpi/BallRollGC-v0", render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    env.step([0.0, 0.1, 0.2])
    after = env.render()
    env.close()
    assert before.shape == after.shape == (240, 320, 3)
    assert np.abs(before.astype(int) - after.astype(int)).sum() > 0  # the ball moved
