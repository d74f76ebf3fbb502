"""Every trial of a live run recorded in its own bag, and a dataset made from the bags."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")
pytest.importorskip("rosbags", reason="needs the ros extra: pip install -e '.[ros]'")

from rosgraph import FAST_ARM, FAST_SIM, NodeProcess, logs, new_namespace

from icpi.cli.main import main
from icpi.manipulation.dataset import ImprovementDataset
from icpi.robot.bags import read_trials
from icpi.robot.track import RestRule


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_run_records_one_bag_per_trial_and_collect_relabels_them(tmp_path):
    ns = new_namespace()
    out = tmp_path / "run"
    driver = {
        "sampler": "nearest",
        "run.iterations": "3",
        "run.dataset_size": "60",
        "out": str(out),
        "trial_timeout": "30.0",
        "record_bags": "true",
    }
    sim = {**FAST_SIM, "camera_noise": "0.0005"}
    procs = {
        "sim": NodeProcess("sim_arm_node", ns, sim, tmp_path / "sim.log"),
        "arm": NodeProcess("arm_node", ns, FAST_ARM, tmp_path / "arm.log"),
        "driver": NodeProcess("driver_node", ns, driver, tmp_path / "driver.log"),
    }
    try:
        assert procs["driver"].wait(timeout=120) == 0, logs(procs)
    finally:
        for p in procs.values():
            p.close()
    records = [json.loads(x) for x in open(out / "records.jsonl")]
    bags = sorted((out / "bags").iterdir())
    assert len(bags) == 3 == len(records), logs(procs)
    trials = read_trials(out / "bags", RestRule(), theta_dim=3)
    by_theta = {tuple(np.round(r["theta"], 9)): r for r in records}
    for t in trials:
        assert t.status == "ok" and t.relabel, t.usable
        # θ from the request is the θ the run recorded; the outcome from the recorded track
        # agrees with the one the arm reported (same points, same rest rule).
        rec = by_theta[tuple(np.round(t.theta, 9))]
        assert np.linalg.norm(t.outcome - np.asarray(rec["outcome"])) < 0.002
        assert t.counts["request"] == 1 and t.counts["result"] == 1
        assert t.counts["trajectory"] >= 2  # the trial and the move home
        assert t.counts["joint_states"] > 10 and t.counts["ball"] > 10
        assert t.counts["arm_state"] >= 1
        meta = (t.path / "metadata.yaml").read_text()
        assert "storage_identifier: mcap" in meta and "icpi.recording: result" in meta
    ds_dir = tmp_path / "ds"
    argv = ["collect", "--task", "ball-roll-gc", "--from-bags", str(out / "bags")]
    assert main([*argv, "--out", str(ds_dir)]) == 0
    ds = ImprovementDataset.load(ds_dir, task_id="ball-roll-gc")
    assert 1 <= len(ds) <= 6
