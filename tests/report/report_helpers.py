"""The report tests' tiny real benchmark, as fixtures, and a parser of report pages.

The benchmark runs real MuJoCo rollouts; ICPI's runs answer through a scripted sampler
(the report reads what the real loop writes: records, attempts with prompts and
completions), the baselines are the real ones. Test modules load the fixtures with
``pytest_plugins = ["report_helpers"]`` (no conftest.py here: a second ``conftest`` module
would shadow the one that other test directories import from).
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from icpi.core import ScriptedSampler, find_numbers
from icpi.manipulation.bench import Job, parse_method, run_config, write_reports
from icpi.manipulation.run import run_icpi

TASKS = ("slide", "ball-roll-gc")
METHODS = ("icpi", "random", "lknn20")
SEEDS = (0, 1)
ITERATIONS = 3
# A completion that must reach the page as text, never as markup.
HOSTILE = "<script>alert('x')</script>"


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
            spec = parse_method(name)
            for seed in SEEDS:
                job = Job(
                    task, spec, seed, ITERATIONS, out / "runs" / task / spec.slug / f"seed-{seed}"
                )
                cfg = run_config(task, spec, seed, ITERATIONS)
                sampler = hostile_then_nearest() if spec.uses_model else None
                run_icpi(cfg, job.out, sampler=sampler)
                jobs.append(job)
    write_reports(jobs, out)
    return out


@pytest.fixture
def bench_copy(bench_dir, tmp_path) -> Path:
    return Path(shutil.copytree(bench_dir, tmp_path / "bench"))


@pytest.fixture
def run_copy(bench_dir, tmp_path) -> Path:
    return Path(shutil.copytree(bench_dir / "runs" / "slide" / "icpi" / "seed-0", tmp_path / "run"))


class Page(HTMLParser):
    """The parts of a report page the tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.attrs: list[tuple[str, dict[str, str]]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.attrs.append((tag, a))
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def sources(self, tag: str) -> list[str]:
        return [a.get("src", "") for t, a in self.attrs if t == tag]

    def by_class(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.attrs if t == tag and cls in a.get("class", "").split()]
