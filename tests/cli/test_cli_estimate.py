"""A model-using run or benchmark says how long it will take, measured (issue 22, item 6)."""

from __future__ import annotations

import logging
import re

from icpi.cli.main import main
from icpi.llm.testing import Reply, completion_body

EXPECT = re.compile(r"about (\S+ \S+) more: (\d+) rollouts? × (\d+\.\d+) s of model calls each")


def estimates(caplog) -> list[tuple[str, int, float]]:
    out = []
    for rec in caplog.records:
        m = EXPECT.search(rec.getMessage())
        if m:
            out.append((rec.getMessage().split(":")[0], int(m.group(2)), float(m.group(3))))
    return out


def test_run_logs_its_expected_duration_after_the_first_model_call(fake, tmp_path, caplog):
    fake.set(Reply(body=completion_body(" 1 -1 0"), delay_s=0.3))
    out = tmp_path / "run"
    argv = ["run", "--task", "slide", "--method", "icpi", "--iterations", "6"]
    with caplog.at_level(logging.INFO):
        assert main([*argv, "--out", str(out), "--base-url", fake.base_url, "--model", "m"]) == 0
    ((what, steps, seconds),) = estimates(caplog)
    assert what == f"run {out}" and steps == 4  # 5 model rollouts, the first one timed
    assert 0.3 <= seconds < 3.0
    # a rerun answered from the cache has nothing to time and says nothing
    caplog.clear()
    with caplog.at_level(logging.INFO):
        argv2 = [*argv, "--out", str(tmp_path / "again"), "--base-url", fake.base_url]
        assert main([*argv2, "--model", "m"]) == 0
    assert estimates(caplog) == []


def test_bench_estimates_every_model_run_at_once(fake, tmp_path, caplog):
    fake.set(Reply(body=completion_body(" 1 0 0"), delay_s=0.2))
    argv = ["bench", "--tasks", "slide", "--methods", "icpi,lknn20", "--seeds", "0-2"]
    argv += ["--iterations", "4", "--out", str(tmp_path / "b"), "--no-progress"]
    with caplog.at_level(logging.INFO):
        assert main([*argv, "--base-url", fake.base_url, "--model", "m"]) == 0
    ((what, steps, seconds),) = estimates(caplog)
    assert what == f"benchmark {tmp_path / 'b'}"
    assert steps == 3 * 3 - 1  # three icpi runs of 3 model rollouts, one timed
    assert 0.2 <= seconds < 3.0
    assert any("3 query the model in 9 rollouts" in r.getMessage() for r in caplog.records)
