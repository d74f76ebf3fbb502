"""The one job runner of ``icpi bench`` and ``icpi collect`` (issue 25, item 3).

Before, a killed Ray worker ended a benchmark with a 30-line ``WorkerCrashedError``
traceback (exit 1) and abandoned the runs in flight; a user error inside a Ray task printed
18 lines of remote traceback; and bench and collect each had their own local and Ray
backends (``RAY_ADDRESS`` honoured only by bench, ``UserError`` against ``ImportError``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icpi.errors import UserError, WorkerLostError
from icpi.jobs import Lane, run_jobs

FAULTY = str(Path(__file__).resolve().parent / "cli" / "faulty_tasks.py")


def dies_once(marker: str) -> int:
    """A job whose first attempt is killed (as by the OOM killer), the next one succeeds."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def always_dies(marker: str) -> int:
    with open(marker, "a") as fh:
        fh.write("died\n")
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def user_mistake(item: int) -> int:
    if item == 2:
        raise UserError(f"item {item} is wrong")
    return item


def square(item: int) -> int:
    return item * item


def test_a_killed_worker_process_is_replaced_and_its_jobs_run_again(tmp_path):
    markers = [str(tmp_path / f"m{i}") for i in range(2)]
    lanes = [Lane(dies_once, markers, limit=2), Lane(square, [1, 2, 3], limit=1, shared=True)]
    done = dict(run_jobs(lanes, "local", retries=2))
    assert set(done) == {*markers, 1, 2, 3} and done[3] == 9
    assert all(Path(m).exists() for m in markers)
    assert os.getpid() not in {done[m] for m in markers}  # in worker processes


def test_workers_that_keep_dying_stop_in_one_resumable_line(tmp_path):
    marker = str(tmp_path / "m")
    with pytest.raises(WorkerLostError, match=r"died 3 times .* rerun the same command"):
        list(run_jobs([Lane(always_dies, [marker], limit=1)], "local", retries=2))
    assert Path(marker).read_text().count("died") == 3  # one attempt and two retries


def test_a_user_error_in_a_job_is_itself_and_stops_the_rest():
    lanes = [Lane(user_mistake, list(range(6)), limit=1)]
    with pytest.raises(UserError, match=r"^item 2 is wrong$"):
        list(run_jobs(lanes, "local"))


@pytest.mark.slow
def test_on_ray_alike_retries_and_errors(tmp_path, capsys):
    """One Ray session: a killed worker is retried, a dying one stops in one line, a user
    error is the error itself (no remote traceback), also through ``icpi bench``."""
    ray = pytest.importorskip("ray")
    here = {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": here})  # fmt: skip
    try:
        markers = [str(tmp_path / f"m{i}") for i in range(2)]
        done = dict(run_jobs([Lane(dies_once, markers, limit=2)], "ray", retries=2))
        assert set(done) == set(markers)
        with pytest.raises(WorkerLostError, match=r"died 3 times \(WorkerCrashedError\); rerun"):
            list(run_jobs([Lane(always_dies, [str(tmp_path / "x")], limit=1)], "ray", retries=2))
        with pytest.raises(UserError) as info:
            list(run_jobs([Lane(user_mistake, [0, 1, 2], limit=1)], "ray"))
        assert str(info.value) == "item 2 is wrong" and type(info.value) is UserError
    finally:
        ray.shutdown()
    from icpi.cli.main import main

    capsys.readouterr()
    argv = ["bench", "--tasks", f"{FAULTY}:NanCostTask", "--methods", "random", "--seeds", "0"]
    assert main([*argv, "--backend", "ray", "--no-progress", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "\x1b[" not in err, err
    assert err.startswith("icpi bench: task analytic returned an invalid rollout") and "nan" in err


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.slow
def test_a_benchmark_survives_a_killed_worker_with_the_same_results(tmp_path):
    """kill -9 of one worker process in the middle of a benchmark: the runs it held run
    again and resume from their directories; the table equals an undisturbed one."""
    icpi = str(Path(sys.executable).parent / "icpi")
    argv = [icpi, "--log-level", "WARNING", "bench", "--tasks", "slide", "--methods",
            "random,cmaes", "--seeds", "0-2", "--iterations", "20", "--workers", "2",
            "--no-progress"]  # fmt: skip
    calm = subprocess.run([*argv, "--out", str(tmp_path / "calm")], capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    assert calm.returncode == 0, calm.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([*argv, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    victim = None
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        started = [p for p in out.glob("runs/*/*/seed-*/records.jsonl") if p.stat().st_size]
        workers = _children(proc.pid)
        if started and workers:
            victim = workers[-1]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=600)
    assert victim is not None, "the benchmark ended before a worker could be killed"
    assert proc.returncode == 0, stderr
    assert "a worker died" in stderr and "again (retry 1 of 2)" in stderr
    import pyarrow.parquet as pq

    def rows(path):
        table = pq.read_table(path / "results.parquet").to_pylist()
        return sorted((r["method"], r["seed"], r["iteration"], r["cost"]) for r in table)

    assert rows(out) == rows(tmp_path / "calm") and len(rows(out)) == 2 * 3 * 20
