"""The ball tracker and the ArUco calibration on frames rendered by MuJoCo (no ROS)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("cv2", reason="needs the ros extra: pip install -e '.[ros]'")

import cv2
import mujoco

from icpi.envs import make_task
from icpi.robot.calibrate import calibrate
from icpi.robot.calibrate import main as calibrate_main
from icpi.robot.camera import CameraRenderer, CameraSetup, MarkerSetup, add_camera, add_marker
from icpi.robot.tracker import (
    BallTracker,
    Calibration,
    CalibrationError,
    Rejected,
    TrackedPoint,
    TrackerSettings,
    rgb_from_image_fields,
)

CAMERA = CameraSetup()
MARKER = MarkerSetup()
# Where the ball comes to rest in ball-roll trials (the goal region and a margin).
REST_LOW, REST_HIGH = (0.3, -0.3), (1.05, 0.3)


class Scene:
    """The ball-roll table with the marker and the camera; a second ball hidden below."""

    def __init__(self, camera: CameraSetup = CAMERA, marker: MarkerSetup = MARKER) -> None:
        task = make_task("ball-roll-gc")
        spec = task.spec(task.make_instance())
        add_marker(spec, marker)
        add_camera(spec, camera)
        extra = spec.worldbody.add_body(name="ball2", pos=[0.0, 0.0, -1.0])
        extra.add_geom(
            type=mujoco.mjtGeom.mjGEOM_SPHERE,
            size=[0.03, 0, 0],
            contype=0,
            conaffinity=0,
            rgba=[0.95, 0.6, 0.1, 1],
        )
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.renderer = CameraRenderer(self.model, camera)
        self.ball = self.model.joint("ball").qposadr[0]
        self.ball2 = self.model.body("ball2").id

    def frame(self, xy, second=None) -> np.ndarray:
        self.data.qpos[self.ball : self.ball + 7] = [xy[0], xy[1], 0.03, 1, 0, 0, 0]
        self.model.body_pos[self.ball2] = [*second, 0.03] if second is not None else [0, 0, -1]
        mujoco.mj_forward(self.model, self.data)
        return self.renderer.render(self.data)


@pytest.fixture(scope="module")
def scene():
    s = Scene()
    yield s
    s.renderer.close()


@pytest.fixture(scope="module")
def calibration(scene) -> Calibration:
    return calibrate(scene.frame((-0.3, -0.3)), CAMERA.camera_matrix(), [], MARKER)


def test_the_camera_model_is_the_one_mujoco_draws(scene):
    # The ideal pinhole of CameraSetup (OpenCV's pixel convention) puts the marker's
    # corners and the ball where MuJoCo renders them.
    from icpi.robot.calibrate import detect_marker

    frame = scene.frame((0.6, -0.1))
    corners = detect_marker(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), MARKER)
    assert np.max(np.abs(corners - CAMERA.project(MARKER.corners()))) < 0.5
    blob = BallTracker(
        Calibration(
            CAMERA.width,
            CAMERA.height,
            CAMERA.camera_matrix(),
            np.zeros(0),
            CAMERA.rotation(),
            np.asarray(CAMERA.position),
        )
    ).candidates(frame)[0]
    assert np.linalg.norm(np.subtract(blob.pixel, CAMERA.project([0.6, -0.1, 0.03]))) < 0.3


def test_calibration_from_one_image_finds_the_camera(calibration):
    # The rendered camera is the ground truth: its pose within millimetres and milliradians.
    assert calibration.reprojection_error < 0.2
    assert np.linalg.norm(calibration.position - CAMERA.position) < 0.015
    rel = calibration.rotation.T @ CAMERA.rotation()
    angle = math.acos(np.clip((np.trace(rel) - 1) / 2, -1, 1))
    assert angle < 0.01, angle


def test_tracked_ball_matches_mujoco_within_3_mm(scene, calibration):
    rng = np.random.default_rng(1)
    errors = []
    for k in range(25):
        xy = rng.uniform(REST_LOW, REST_HIGH)
        tracker = BallTracker(calibration)
        out = tracker.process(scene.frame(xy), stamp=1.0 + k)
        assert isinstance(out, TrackedPoint), out
        assert out.stamp == 1.0 + k
        assert out.xyz[2] == pytest.approx(0.03)
        errors.append(np.linalg.norm(out.xyz[:2] - xy))
    # Measured (320x240, 0.2 m marker): mean 1.2 mm, max 3.0 mm.
    assert np.mean(errors) < 0.002 and np.max(errors) < 0.0035, errors


def test_marker_not_found_is_one_clear_error(scene):
    hidden = MarkerSetup(marker_id=7)
    with pytest.raises(
        CalibrationError, match=r"no ArUco marker 7 of DICT_4X4_50 .*found ids \[0\]"
    ):
        calibrate(scene.frame((0.5, 0.0)), CAMERA.camera_matrix(), [], hidden)
    blank = np.full((240, 320, 3), 90, np.uint8)
    with pytest.raises(CalibrationError, match="found ids none"):
        calibrate(blank, CAMERA.camera_matrix(), [], MARKER)


def test_wrong_marker_size_or_intrinsics_is_refused_or_off_by_the_scale(scene):
    # A marker said to be twice its size: the pose scales (the camera twice as far).
    big = MarkerSetup(size=2 * MARKER.size, center=MARKER.center)
    cal = calibrate(scene.frame((0.5, 0.0)), CAMERA.camera_matrix(), [], big)
    assert np.linalg.norm(cal.position - MARKER.corners().mean(axis=0)) > 1.8 * np.linalg.norm(
        np.asarray(CAMERA.position) - MARKER.corners().mean(axis=0)
    )


def test_two_balls_the_track_decides_or_nothing_is_published(scene, calibration):
    tracker = BallTracker(calibration)
    both = scene.frame((0.6, 0.1), second=(0.8, -0.2))
    out = tracker.process(both, 1.0)
    assert isinstance(out, Rejected) and out.kind == "ambiguous"
    first = tracker.process(scene.frame((0.6, 0.1)), 1.1)
    assert isinstance(first, TrackedPoint)
    # On a track (30 Hz frames: a gate of 6 m/s * 33 ms + 2 cm), a second ball beyond it
    # does not confuse the tracker.
    out = tracker.process(scene.frame((0.61, 0.1), second=(0.8, -0.2)), 1.133)
    assert isinstance(out, TrackedPoint) and abs(out.xyz[0] - 0.61) < 0.004
    # Two balls both near the track: nothing.
    out = tracker.process(scene.frame((0.62, 0.1), second=(0.62, 0.18)), 1.167)
    assert isinstance(out, Rejected) and out.kind == "ambiguous"


def test_a_jump_is_rejected_once_and_taken_when_it_stays(scene, calibration):
    tracker = BallTracker(calibration, TrackerSettings(reacquire_frames=3))
    assert isinstance(tracker.process(scene.frame((0.7, 0.0)), 1.0), TrackedPoint)
    # 0.5 m in 10 ms: an outlier.
    glitch = tracker.process(scene.frame((0.2, 0.0)), 1.01)
    assert isinstance(glitch, Rejected) and glitch.kind == "outlier"
    assert isinstance(tracker.process(scene.frame((0.7, 0.0)), 1.02), TrackedPoint)
    # The ball put back on its spot (at the start of a trial): taken after 3 frames.
    kinds = [tracker.process(scene.frame((0.0, 0.0)), 1.03 + 0.01 * i) for i in range(3)]
    assert [k.kind for k in kinds[:2]] == ["outlier", "outlier"]  # type: ignore[union-attr]
    assert isinstance(kinds[2], TrackedPoint) and np.linalg.norm(kinds[2].xyz[:2]) < 0.004


def test_stamps_floods_and_foreign_images_are_rejected(scene, calibration):
    tracker = BallTracker(calibration, TrackerSettings(max_rate=100.0))
    img = scene.frame((0.5, 0.0))
    assert isinstance(tracker.process(img, 2.0), TrackedPoint)
    stale = tracker.process(img, 2.0)  # the same stamp again
    assert isinstance(stale, Rejected) and stale.kind == "stamp"
    back = tracker.process(img, 1.5)
    assert isinstance(back, Rejected) and back.kind == "stamp"
    flood = tracker.process(img, 2.001)  # stamped 1 ms after the last tracked frame
    assert isinstance(flood, Rejected) and flood.kind == "rate"
    small = tracker.process(img[::2, ::2].copy(), 2.1)
    assert isinstance(small, Rejected) and "calibrate again" in small.reason
    nan = tracker.process(img, math.nan)
    assert isinstance(nan, Rejected) and nan.kind == "stamp"
    empty = tracker.process(np.full_like(img, 80), 2.2)
    assert isinstance(empty, Rejected) and empty.kind == "no_ball"
    assert isinstance(tracker.process(img, 2.3), TrackedPoint)
    assert tracker.counts == {"ok": 2, "stamp": 3, "rate": 1, "image": 1, "no_ball": 1}


def test_image_fields_decode_every_colour_encoding():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    bgr_padded = np.concatenate([rgb[:, :, ::-1].reshape(2, 9), np.zeros((2, 3), np.uint8)], axis=1)
    np.testing.assert_array_equal(
        rgb_from_image_fields("bgr8", 3, 2, 12, bgr_padded.tobytes()), rgb
    )
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(rgb_from_image_fields("rgba8", 3, 2, 12, rgba.tobytes()), rgb)
    with pytest.raises(ValueError, match="not colour"):
        rgb_from_image_fields("mono8", 3, 2, 3, bytes(6))
    with pytest.raises(ValueError, match="does not match"):
        rgb_from_image_fields("rgb8", 3, 2, 9, bytes(10))


def test_calibration_yaml_round_trip_and_bad_files(tmp_path, calibration):
    path = tmp_path / "cal.yaml"
    calibration.save(path)
    back = Calibration.load(path)
    np.testing.assert_allclose(back.homography(0.03), calibration.homography(0.03))
    assert back.meta["marker"]["id"] == 0
    for text, match in [
        ("format: other\n", "not a camera calibration"),
        ("[1, 2\n", "cannot read"),
    ]:
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(CalibrationError, match=match):
            Calibration.load(tmp_path / "bad.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["camera_rotation"] = [1, 0, 0, 0, 1, 0, 0, 0, 2]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(CalibrationError, match="no rotation"):
        Calibration.load(tmp_path / "bad.yaml")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(tmp_path / "missing.yaml")


def _camera_info_yaml(path: Path, camera: CameraSetup) -> None:
    k = camera.camera_matrix()
    path.write_text(
        yaml.safe_dump(
            {
                "image_width": camera.width,
                "image_height": camera.height,
                "camera_name": "twin",
                "camera_matrix": {"rows": 3, "cols": 3, "data": k.ravel().tolist()},
                "distortion_model": "plumb_bob",
                "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
            }
        )
    )


def test_icpi_calibrate_command_from_files(tmp_path, scene, capsys):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), cv2.cvtColor(scene.frame((0.5, 0.0)), cv2.COLOR_RGB2BGR))
    info = tmp_path / "camera_info.yaml"
    _camera_info_yaml(info, CAMERA)
    out = tmp_path / "calibration.yaml"
    args = ["--image", str(image), "--camera-info", str(info), "--out", str(out)]
    assert calibrate_main(args) == 0
    cal = Calibration.load(out)
    assert np.linalg.norm(cal.position - CAMERA.position) < 0.015
    # A marker that is not there: one line, exit 2, nothing written.
    out2 = tmp_path / "none.yaml"
    code = calibrate_main([*args[:4], "--out", str(out2), "--marker-id", "3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out2.exists()
    assert len(err) == 1 and err[0].startswith("icpi-calibrate: no ArUco marker 3"), err
    # The printable marker.
    png = tmp_path / "marker.png"
    assert calibrate_main(["--write-marker", str(png)]) == 0
    printed = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50))
    _, ids, _ = detector.detectMarkers(printed)
    assert ids is not None and ids.ravel().tolist() == [0]
