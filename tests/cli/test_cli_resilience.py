"""A run survives its endpoint and its neighbours (issue 14), with real processes.

Each of these failed before: the hostile-server run needed 7 starts; an HTML body gave an
AttributeError; two ``icpi run`` on one directory both exited 0 and corrupted it; an
endpoint that stayed down ended in a traceback; credentials in ``--base-url`` landed in
config.json, the logs and the cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from cli_support import ICPI, run_icpi

from icpi.envs import make_task
from icpi.llm.server import free_port
from icpi.llm.testing import FakeOpenAI, Reply, completion_body

# A hostile endpoint: one behaviour per request, cycled (answers, garbage, errors, stalls).
HOSTILE = [
    Reply(body=completion_body(" 3 -2 1")),
    Reply(body=completion_body(" Sure! Here is how I would approach this problem ...")),
    Reply(body=completion_body(" 4 5")),  # wrong arity
    Reply(body=completion_body(" nan inf 2")),
    Reply(body=completion_body(" 1e300 2 3")),
    Reply(body=completion_body("   ")),  # empty
    Reply(status=500, body={"error": {"message": "boom"}}),
    Reply(status=429, body={"error": {"message": "slow down"}}, headers={"Retry-After": "0.2"}),
    Reply(body=completion_body(" 1 1 1"), delay_s=1.5),  # slower than the read timeout
    Reply(body='{"choices": [{"text": '),  # malformed JSON
    Reply(body={"object": "list", "data": []}),  # JSON, but not a completion
    Reply(body="<html><h1>502 Bad Gateway</h1></html>", headers={"Content-Type": "text/html"}),
    Reply(body=completion_body(" ５ −３ ２ \u202e\u0000")),  # odd unicode
    Reply(body=completion_body(" -2 0 4")),
]
FAST = ["--timeout", "0.5", "--max-retries", "2", "--call-timeout", "3"]


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path / "records.jsonl").read_text().splitlines()]


def test_hostile_endpoint_run_finishes_in_one_start(fake, tmp_path):
    fake.set(*HOSTILE, cycle=True)
    out = tmp_path / "run"
    argv = ["run", "--task", "slide", "--method", "icpi", "--iterations", "13", "--out", str(out)]
    t0 = time.perf_counter()
    proc = run_icpi(*argv, "--base-url", fake.base_url, "--model", "m", *FAST)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    recs = records(out)
    assert [r["iteration"] for r in recs] == list(range(13))
    spec = make_task("slide").theta_spec
    for r in recs:
        theta = np.asarray(r["theta"])
        assert np.all(np.isfinite(theta)) and np.all(theta >= spec.low_array)
        assert np.all(theta <= spec.high_array)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sources"].get("fallback", 0) >= 1 and summary["model_errors"] >= 1
    assert wall < 120


def test_hostile_endpoint_bench_finishes_in_one_start(fake, tmp_path):
    fake.set(*HOSTILE, cycle=True)
    out = tmp_path / "bench"
    argv = ["bench", "--tasks", "slide", "--methods", "icpi,random", "--seeds", "0-1"]
    argv += ["--iterations", "5", "--out", str(out), "--no-progress"]
    proc = run_icpi(*argv, "--base-url", fake.base_url, "--model", "m", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| icpi |" in proc.stdout


def test_hostile_endpoint_lang_finishes_in_one_start(fake, tmp_path):
    fake.set(*HOSTILE, cycle=True)
    out = tmp_path / "lang"
    argv = ["lang", "--task", "game24", "--method", "icrl-preset", "--problems", "2"]
    argv += ["--rounds", "3", "--out", str(out), "--max-tokens", "64"]
    proc = run_icpi(*argv, "--base-url", fake.base_url, "--model", "m", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["rounds"] == 3


def test_endpoint_down_exits_3_in_one_line_and_resumes(tmp_path):
    out = tmp_path / "run"
    port = free_port()
    argv = ["run", "--task", "ball-roll-gc", "--method", "icpi", "--iterations", "6"]
    argv += ["--out", str(out)]
    argv += ["--model", "m", "--base-url", f"http://127.0.0.1:{port}/v1"]  # nobody listens
    proc = run_icpi(*argv, "--outage", "2", "--max-retries", "1")
    assert proc.returncode == 3, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("icpi run: endpoint ") and "unreachable for" in err[-1]
    assert "rerun the same command to resume" in err[-1] and "Traceback" not in proc.stderr
    kept = records(out)
    assert kept[0]["source"] == "initial"  # θ0 (and any fallback rollouts) are kept
    # the endpoint is back: the same command resumes and finishes the run
    fake = FakeOpenAI(port=port)
    try:
        fake.set(Reply(body=completion_body(" 1 0 0")))
        proc = run_icpi(*argv)
    finally:
        fake.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = records(out)
    assert len(done) == 6 and done[: len(kept)] == kept


def test_credentials_in_the_base_url_reach_no_file_and_no_log(fake, tmp_path):
    fake.set(Reply(status=500, body={}), Reply(body=completion_body(" 1 0 0")))
    port = fake.base_url.split(":")[2].split("/")[0]
    url = f"http://bob:PW-SECRET-7@127.0.0.1:{port}/v1"
    out = tmp_path / "run"
    cache = tmp_path / "cache.sqlite3"
    argv = ["--log-level", "DEBUG", "run", "--task", "slide", "--method", "icpi"]
    argv += ["--iterations", "3"]
    proc = run_icpi(*argv, "--out", str(out), "--base-url", url, "--model", "m", "--cache",
                    str(cache), env={"OPENAI_API_KEY": "sk-KEY-SECRET-8"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HTTP Request: POST" in proc.stderr  # the DEBUG log was written ...
    assert "SECRET" not in proc.stderr + proc.stdout  # ... without the credentials
    for path in [*out.rglob("*"), cache]:
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path


# ---------------------------------------------------------------------------- one owner
def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ICPI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("verb", ["run", "bench", "collect", "lang"])
def test_a_directory_has_one_owner_at_a_time(verb, fake, tmp_path):
    fake.set(Reply(body=completion_body(" 1 0 0"), delay_s=0.25))
    out = tmp_path / "out"
    llm = ["--base-url", fake.base_url, "--model", "m"]
    argv = {
        "run": ["run", "--task", "slide", "--method", "icpi", "--iterations", "12",
                "--out", str(out), *llm],
        "bench": ["bench", "--tasks", "slide", "--methods", "icpi", "--seeds", "0",
                  "--iterations", "12", "--out", str(out), "--no-progress", *llm],
        "collect": ["collect", "--task", "rope-swing", "--size", "40", "--out", str(out),
                    "--no-progress", "--workers", "1"],
        "lang": ["lang", "--task", "game24", "--problems", "2", "--rounds", "6",
                 "--out", str(out), *llm],
    }[verb]  # fmt: skip
    first = _start(argv)
    try:
        _wait_for(out / ".lock")
        time.sleep(0.5)
        second = run_icpi(*argv, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        err = second.stderr.strip()
        assert len(err.splitlines()) == 1 and f"PID {first.pid}" in err and "in use" in err
        assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:] if first.stderr else ""
    finally:
        if first.poll() is None:
            first.kill()
    if verb == "run":
        assert [r["iteration"] for r in records(out)] == list(range(12))  # no duplicates
    # the kernel released the lock: a new owner can take over at once
    assert run_icpi(*argv, timeout=300).returncode == 0


def test_a_killed_owner_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    argv = ["run", "--task", "rope-swing", "--method", "random", "--iterations", "50"]
    first = _start([*argv, "--out", str(out)])
    _wait_for(out / "records.jsonl")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert len(records(out)) < 50
    again = run_icpi(*argv, "--out", str(out), timeout=600)  # takes the lock at once
    assert again.returncode == 0, again.stderr[-2000:]
    assert [r["iteration"] for r in records(out)] == list(range(50))


# ---------------------------------------------------------------------------- orphans
@pytest.mark.slow
@pytest.mark.parametrize("how", ["main-pid", "process-group"])
def test_kill_9_leaves_no_embedded_server_behind(how, tmp_path):
    pytest.importorskip("llama_cpp")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            ICPI,
            "run",
            "--task",
            "slide",
            "--method",
            "icpi",
            "--iterations",
            "20",
            "--out",
            str(out),
            "--no-cache",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so killing it spares pytest
    )
    server = None
    try:
        t0 = time.monotonic()
        while server is None and time.monotonic() - t0 < 180:
            server = _child_server(proc.pid)
            time.sleep(0.2)
        assert server is not None, "the embedded server never started"
        if how == "main-pid":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        t1 = time.monotonic()
        while _alive(server) and time.monotonic() - t1 < 5:
            time.sleep(0.1)
        assert not _alive(server), f"embedded server {server} outlived its parent"
    finally:
        if proc.poll() is None:
            proc.kill()
        if server is not None and _alive(server):
            os.kill(server, signal.SIGKILL)


def _child_server(parent: int) -> int | None:
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"icpi.llm._child" in cmd and int(stat[1]) == parent:
            return int(d.name)
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
