"""The expected duration of a job, from its measured model calls (issue 22, item 6)."""

from __future__ import annotations

import logging
import threading

import pytest

from icpi.core.estimate import Estimate, ExpectationNotice, format_duration


def test_format_duration_reads_like_a_person():
    assert format_duration(40) == "40 s"
    assert format_duration(330) == "5.5 min"
    assert format_duration(9 * 3600 + 360) == "9.1 h"
    assert format_duration(float("nan")) == "unknown"


def test_estimate_is_steps_times_measured_seconds_over_concurrency():
    est = Estimate(steps=855, seconds_per_step=38.0, concurrency=1)
    assert est.seconds == pytest.approx(855 * 38.0)
    assert est.describe().startswith("about 9.0 h more: 855 rollouts × 38.00 s")
    assert Estimate(10, 2.0, concurrency=4).seconds == pytest.approx(5.0)
    assert "1 round ×" in Estimate(1, 2.0, unit="round").describe()


def test_the_notice_waits_for_a_live_step_and_logs_once(caplog):
    notice = ExpectationNotice("run r", steps=20)
    with caplog.at_level(logging.INFO, logger="icpi.core.estimate"):
        assert notice.observe(0.001, live=False) is None  # a cache hit times nothing
        assert notice.observe(0.0) is None  # nor does a step without model time
        est = notice.observe(17.0)
        assert notice.observe(1.0) is None  # once
    assert est is not None and est.steps == 17 and est.seconds == pytest.approx(17 * 17.0)
    (rec,) = caplog.records
    assert rec.levelno == logging.WARNING  # about 4.8 min: long
    assert rec.getMessage() == (
        "run r: about 4.8 min more: 17 rollouts × 17.00 s of model calls each (measured)"
    )


def test_a_short_job_is_info_and_a_finished_one_says_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="icpi.core.estimate"):
        ExpectationNotice("short", steps=3).observe(0.5)
        ExpectationNotice("done", steps=1).observe(30.0)
    assert [(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records] == [
        (logging.INFO, "short")
    ]


def test_the_notice_counts_steps_of_many_threads():
    notice = ExpectationNotice("bench", steps=400, concurrency=4)

    def work():
        for _ in range(50):
            notice.observe(2.0, live=False)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    est = notice.observe(2.0)
    assert est is not None and est.steps == 400 - 201 and est.seconds == pytest.approx(199 * 0.5)
