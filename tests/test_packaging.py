"""The wheel and the sdist build, install in a clean virtual environment and work there:
the console scripts run and the shipped datasets come with the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd: str, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, **kw)
    assert proc.returncode == 0, (cmd, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


@pytest.mark.slow
def test_wheel_and_sdist_install_in_a_clean_venv_and_run(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(dist), str(ROOT))
    wheel = next(dist.glob("icpi-*.whl"))
    sdist = next(dist.glob("icpi-*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "icpi/datasets/slide/examples.parquet",
        "icpi/datasets/ball-roll-gc/meta.json",
        "icpi/envs/assets/slide.xml",
        "icpi/robot/arms/ur5e.xml",
        "icpi/report/templates/report.html.j2",
        "icpi/language/data/game24_ranks.txt",
        "icpi/language/data/icrl_paper_prompts.md",
    ):
        assert needed in names, needed
    assert not any(n.startswith(("envs/", "robot/", "datasets/")) for n in names)
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert any(m.endswith("icpi/datasets/slide/examples.parquet") for m in members)
    # a clean venv: the wheel with its dependencies (pinned like CI), nothing from the tree
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    py = venv / "bin" / "python"
    run(str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ICPI_DATASETS")}
    out = run(str(py), "-c", "import icpi; print(icpi.__version__)", cwd=tmp_path, env=env)
    assert out.stdout.strip() == "0.2.0"
    icpi = str(venv / "bin" / "icpi")
    run(icpi, "--help", cwd=tmp_path, env=env)
    argv = ["run", "--task", "slide", "--method", "lknn20", "--iterations", "3", "--out", "r"]
    run(icpi, "--log-level", "WARNING", *argv, cwd=tmp_path, env=env)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["best_cost"] < summary["initial_cost"]
