"""Fixtures of the report tests: a tiny real benchmark directory and copies of it.

The benchmark runs real MuJoCo rollouts; ICPI's runs answer through a scripted sampler
(the report reads what the real loop writes: records, attempts with prompts and
completions), the baselines are the real ones. Test modules load these fixtures with
``pytest_plugins = ["report_fixtures"]`` (no conftest.py here: a second ``conftest``
module would shadow the one that other test directories import from).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from report_helpers import HOSTILE, ITERATIONS, METHODS, SEEDS, TASKS

from icpi.core import ScriptedSampler, find_numbers
from icpi.manipulation.bench import Job, write_reports
from icpi.manipulation.config import parse_method_spec
from icpi.manipulation.run import run_method


def copy_nearest(prompt, n, seed):
    """Answer with the Δθ* of the nearest (last) example shown."""
    lines = [ln for ln in str(prompt).splitlines() if "->" in ln and ln.split("->")[1].strip()]
    return [" " + " ".join(find_numbers(lines[-1].split("->")[1]))] * n


def hostile_then_nearest():
    calls = {"n": 0}

    def script(prompt, n, seed):
        calls["n"] += 1
        return [HOSTILE] * n if calls["n"] == 1 else copy_nearest(prompt, n, seed)

    return ScriptedSampler(script)


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    jobs = []
    for task in TASKS:
        for name in METHODS:
            spec = parse_method_spec(name)
            for seed in SEEDS:
                out_dir = out / "runs" / task / spec.slug / f"seed-{seed}"
                job = Job(task, spec, seed, ITERATIONS, out_dir, run={}, llm={})
                sampler = hostile_then_nearest() if spec.uses_model else None
                run_method(job.config(), job.out, sampler=sampler)
                jobs.append(job)
    write_reports(jobs, out)
    return out


@pytest.fixture
def bench_copy(bench_dir, tmp_path) -> Path:
    return Path(shutil.copytree(bench_dir, tmp_path / "bench"))


@pytest.fixture
def run_copy(bench_dir, tmp_path) -> Path:
    return Path(shutil.copytree(bench_dir / "runs" / "slide" / "icpi" / "seed-0", tmp_path / "run"))
