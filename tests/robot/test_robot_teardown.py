"""A test run that is terminated (SIGTERM: a CI timeout, ``kill``) closes its node processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")

TESTS = Path(__file__).resolve().parents[1]

HOLD = """
import os, time
from rosgraph import Probe, new_namespace, start_graph

def test_hold(tmp_path):
    ns = new_namespace()
    procs, probe = start_graph(tmp_path, ns), None
    try:
        probe = Probe(ns)  # rclpy in the test process too, as in every graph test
        probe.wait_matched()
        pids = " ".join(str(p.proc.pid) for p in procs.values())
        open(os.environ["HOLD_PIDS"], "w").write(pids)
        time.sleep(600)
    finally:
        if probe is not None:
            probe.close()
        for p in procs.values():
            p.close()
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_terminated_test_run_closes_the_node_processes_it_started(tmp_path):
    (tmp_path / "test_hold.py").write_text(HOLD)
    pids_file = tmp_path / "pids"
    env = {
        **os.environ,
        "HOLD_PIDS": str(pids_file),
        # tests/ first: its conftest.py is the plugin below (tests/robot has one too)
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS / "robot")]),
    }
    # tests/conftest.py as a plugin: the held test lives outside the tests folder
    args = [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider"]
    run = subprocess.Popen(
        [*args, str(tmp_path / "test_hold.py")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not pids_file.exists() or not pids_file.read_text():
            assert run.poll() is None, run.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the held test never started its graph"
            time.sleep(0.2)
        pids = [int(p) for p in pids_file.read_text().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        run.send_signal(signal.SIGTERM)
        out = run.communicate(timeout=60)[0]
        assert run.returncode != 0, out[-3000:]  # interrupted, not passed
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in pids), out[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
