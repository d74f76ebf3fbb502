"""Trial bags (rosbag2 + MCAP) written as the recorder writes them, read back, relabelled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")
pytest.importorskip("rosbags", reason="needs the ros extra: pip install -e '.[ros]'")

from geometry_msgs.msg import Point, PointStamped
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from icpi.cli.main import main
from icpi.manipulation.dataset import ImprovementDataset
from icpi.robot.bags import BagError, TrialBagWriter, bag_name, read_trial
from icpi.robot.contract import TrialResult
from icpi.robot.ros_common import time_msg
from icpi.robot.track import RestRule

TOPICS = {
    "request": "/icpi/trial_request",
    "result": "/icpi/trial_result",
    "joint_states": "/joint_states",
    "ball": "/ball/point",
    "image": "/camera/image_raw",
}


def write_bag(
    directory: Path,
    trial_id: int,
    theta=(0.1, 0.05, 0.3),
    rest=(0.7, 0.05),
    status="ok",
    moving_at_end=False,
    frame_id="task",
) -> Path:
    """A trial's bag: request, joint states, a camera frame, the ball rolling to ``rest``."""
    path = directory / bag_name(trial_id)
    bag = TrialBagWriter(path, TOPICS, trial_id)
    t0 = 1_000_000_000 * trial_id

    def put(topic, k, msg):
        bag.write(topic, t0 + k * 10_000_000, serialize_message(msg))

    put(TOPICS["request"], 0, Float64MultiArray(data=[float(trial_id), *theta, 0.7, 0.0]))
    img = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12))
    put(TOPICS["image"], 1, img)
    rng = np.random.default_rng(trial_id)
    for k in range(150):  # 1.5 s at 100 Hz: rolls for 0.8 s, then rests
        s = min(1.0, k / 80) if not moving_at_end else k / 150
        xy = np.asarray(rest) * s + rng.normal(0, 0.0003, 2)
        p = PointStamped(point=Point(x=float(xy[0]), y=float(xy[1]), z=0.03))
        p.header.stamp = time_msg(100.0 * trial_id + 0.01 * k)
        p.header.frame_id = frame_id
        put(TOPICS["ball"], 2 + k, p)
        put(TOPICS["joint_states"], 2 + k, JointState(name=["a"], position=[0.01 * k]))
    res = TrialResult(trial_id, status, "" if status == "ok" else "the ball did not move")
    if status == "ok":
        res.outcome, res.e, res.cost = list(rest), [rest[0] - 0.7, rest[1]], 0.05
    put(TOPICS["result"], 200, String(data=res.to_json()))
    bag.close("result")
    return path


def test_a_trial_reads_back_with_its_outcome_from_the_track(tmp_path):
    path = write_bag(tmp_path, 11, theta=(0.2, 0.04, 0.35), rest=(0.75, 0.08))
    assert (path / "metadata.yaml").is_file() and (path / f"{path.name}.mcap").is_file()
    trial = read_trial(path, RestRule(), theta_dim=3)
    assert trial.trial_id == 11 and trial.status == "ok" and trial.relabel
    np.testing.assert_allclose(trial.theta, [0.2, 0.04, 0.35])
    np.testing.assert_allclose(trial.goal, [0.7, 0.0])
    np.testing.assert_allclose(trial.outcome, [0.75, 0.08], atol=5e-4)
    np.testing.assert_allclose(trial.reported_outcome, [0.75, 0.08])
    assert trial.counts == {
        "request": 1,
        "result": 1,
        "joint_states": 150,
        "ball": 150,
        "image": 1,
    }
    assert len(trial.track) == 150 and np.all(np.diff(trial.track[:, 0]) > 0)


def test_trials_that_did_not_end_ok_or_at_rest_are_kept_but_not_relabelled(tmp_path):
    no_motion = read_trial(write_bag(tmp_path, 1, status="no_motion"), RestRule(), 3)
    assert not no_motion.relabel and "no_motion" in no_motion.usable
    rolling = read_trial(write_bag(tmp_path, 2, moving_at_end=True), RestRule(), 3)
    assert not rolling.relabel and "does not end at rest" in rolling.usable
    # Ball points in another frame (a second publisher, a camera frame) are not the track.
    foreign = read_trial(write_bag(tmp_path, 3, frame_id="camera_optical_frame"), RestRule(), 3)
    assert not foreign.relabel and len(foreign.track) == 0


def test_truncated_and_corrupt_bags_are_one_clear_error(tmp_path):
    good = write_bag(tmp_path, 5)
    cut = tmp_path / "trial_6"
    shutil.copytree(good, cut)
    (cut / "metadata.yaml").unlink()  # what a killed recorder leaves
    with pytest.raises(BagError, match=r"trial_6 is truncated: no metadata\.yaml"):
        read_trial(cut, RestRule(), 3)
    short = tmp_path / "trial_7"
    shutil.copytree(good, short)
    mcap = short / f"{good.name}.mcap"
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(BagError, match="trial_7 is corrupt or truncated"):
        read_trial(short, RestRule(), 3)
    junk = tmp_path / "trial_8"
    shutil.copytree(good, junk)
    (junk / "metadata.yaml").write_text("rosbag2_bagfile_information: [1, 2\n")
    with pytest.raises(BagError, match="trial_8 is corrupt or truncated"):
        read_trial(junk, RestRule(), 3)


def test_collect_from_bags_makes_a_dataset_that_run_accepts(tmp_path, capsys):
    bags = tmp_path / "bags"
    rests = [(0.55, 0.1), (0.7, -0.05), (0.85, 0.12), (0.62, -0.15), (0.9, 0.0)]
    thetas = [(0.1, 0.04, 0.3), (-0.05, 0.05, 0.3), (0.1, 0.06, 0.3), (-0.2, 0.045, 0.3)]
    thetas.append((0.0, 0.065, 0.3))
    for k, (rest, theta) in enumerate(zip(rests, thetas, strict=True)):
        write_bag(bags, 100 + k, theta=theta, rest=rest)
    write_bag(bags, 200, status="no_motion")
    out = tmp_path / "ds"
    argv = ["collect", "--task", "ball-roll-gc", "--from-bags", str(bags), "--out", str(out)]
    assert main(argv) == 0
    ds = ImprovementDataset.load(out, task_id="ball-roll-gc")
    assert len(ds) == 20  # every ordered pair of the 5 scored trials
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"] == "real-arm-bags" and meta["physics_known"] is False
    kept = meta["bags"]["kept_not_relabelled"]
    assert list(kept) == ["trial_200"]
    assert kept["trial_200"].startswith("status no_motion: the ball did not move")
    assert (bags / "trial_200").is_dir()  # kept
    run = ["run", "--task", "ball-roll-gc", "--method", "knn5", "--dataset", str(out)]
    assert main([*run, "--iterations", "2", "--out", str(tmp_path / "r")]) == 0
    # A truncated bag among them: one line, exit 2, nothing written.
    shutil.copytree(bags / "trial_100", bags / "trial_300")
    (bags / "trial_300" / "metadata.yaml").unlink()
    out2 = tmp_path / "ds2"
    capsys.readouterr()
    assert main([*argv[:-1], str(out2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trial_300 is truncated" in err[0], err
    assert not out2.exists()
    # Too few scored trials: said plainly.
    few = tmp_path / "few"
    write_bag(few, 1)
    write_bag(few, 2, status="no_motion")
    assert main([*argv[:4], str(few), "--out", str(tmp_path / "ds3")]) == 2
    assert "1 of 2 bags" in capsys.readouterr().err
