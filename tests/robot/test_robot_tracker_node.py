"""``icpi-tracker-node`` over real DDS: rendered frames in, stamped ball points out."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs the ros extra: pip install -e '.[ros]'")
pytest.importorskip("cv2", reason="needs the ros extra: pip install -e '.[ros]'")

from rosgraph import NodeProcess, Probe, logs, new_namespace
from test_robot_tracker import CAMERA, MARKER, Scene

from icpi.robot.calibrate import calibrate


def _image(rgb: np.ndarray, stamp: float):
    from sensor_msgs.msg import Image

    from icpi.robot.ros_common import time_msg

    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=3 * rgb.shape[1])
    msg.data = rgb.tobytes()
    msg.header.stamp = time_msg(stamp)
    msg.header.frame_id = "camera_optical_frame"
    return msg


def _info(stamp: float, focal_scale: float = 1.0):
    from sensor_msgs.msg import CameraInfo

    from icpi.robot.ros_common import time_msg

    k = CAMERA.camera_matrix().copy()
    k[0, 0] *= focal_scale
    k[1, 1] *= focal_scale
    msg = CameraInfo(width=CAMERA.width, height=CAMERA.height, k=k.ravel().tolist(), d=[0.0] * 5)
    msg.header.stamp = time_msg(stamp)
    return msg


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tracker_node_points_carry_the_image_stamp_and_refuse_bad_cameras(tmp_path):
    from geometry_msgs.msg import PointStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    scene = Scene()
    cal = calibrate(scene.frame((-0.3, -0.3)), CAMERA.camera_matrix(), [], MARKER)
    cal_path = tmp_path / "calibration.yaml"
    cal.save(cal_path)
    ns = new_namespace()
    node = NodeProcess(
        "tracker_node", ns, {"calibration": str(cal_path), "max_rate": "200.0"}, tmp_path / "t.log"
    )
    probe = None
    try:
        probe = Probe(ns)
        points: list = []
        probe.node.create_subscription(
            PointStamped, "ball/point", points.append, qos_profile_sensor_data
        )
        image_pub = probe.node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        info_pub = probe.node.create_publisher(
            CameraInfo, "camera/camera_info", qos_profile_sensor_data
        )
        probe.wait_for(lambda: image_pub.get_subscription_count() > 0, 30, "the tracker")
        positions = [(0.5 + 0.01 * k, 0.05) for k in range(10)]
        frames = [scene.frame(p) for p in positions]

        def send(imgs, stamp0, focal_scale=1.0, info_first=True):
            for k, img in enumerate(imgs):
                stamp = stamp0 + 0.02 * k
                if info_first:
                    info_pub.publish(_info(stamp, focal_scale))
                image_pub.publish(_image(img, stamp))
                if not info_first:
                    time.sleep(0.005)
                    info_pub.publish(_info(stamp, focal_scale))
                time.sleep(0.02)

        # Good frames: one point each, the image's stamp, the task frame, within 3 mm.
        def settle():
            n = -1
            while n != len(points):
                n = len(points)
                time.sleep(0.3)

        def prime():
            # Until the tracker has heard this publisher: the publisher can match its
            # subscription before the tracker matches the publisher (seconds on a loaded
            # machine), and best-effort frames sent in between are lost. One frame every
            # 0.05 s of stamps (stamps stay below the test's first, 10 s).
            deadline = time.monotonic() + 30
            stamp = 1.0
            while True:
                with probe.lock:
                    if points:
                        break
                assert time.monotonic() < deadline, "no point in 30 s" + logs({"tracker": node})
                send(frames[:1], stamp)
                stamp += 0.05
                time.sleep(0.2)
            settle()
            with probe.lock:
                points.clear()

        prime()
        send(frames, 10.0)
        probe.wait_for(lambda: len(points) >= 8, 20, "ball points")
        settle()
        got = {p.header.stamp.sec + 1e-9 * p.header.stamp.nanosec: p for p in points}
        assert all(p.header.frame_id == "task" for p in points)
        for k, xy in enumerate(positions):
            p = got.get(round(10.0 + 0.02 * k, 9))
            if p is not None:
                assert np.hypot(p.point.x - xy[0], p.point.y - xy[1]) < 0.003
                assert p.point.z == pytest.approx(0.03)
        # Two balls on the table: no point at all (a fresh track: the first is far back).
        points.clear()
        two = [scene.frame((0.2, -0.2), second=(0.8, 0.2)) for _ in range(3)]
        send(two, 20.0)
        time.sleep(1.0)
        assert points == [], "a frame with two balls gave a point"
        # A camera re-configured after calibration (another focal length): nothing.
        send(frames[:3], 30.0, focal_scale=1.2)
        send(frames[3:6], 31.0, focal_scale=1.2, info_first=False)
        time.sleep(1.0)
        assert points == [], "points from a camera that no longer matches its calibration"
        send(frames[:3], 40.0, info_first=False)  # the calibrated camera is back
        probe.wait_for(lambda: len(points) >= 1, 10, "points again")
        assert node.alive(), logs({"tracker": node})
        text = node.text()
        assert "no ball points until icpi-calibrate runs again" in text
        assert "ambiguous" in text
    finally:
        if probe is not None:
            probe.close()
        node.close()
        scene.renderer.close()


def test_tracker_node_without_a_calibration_exits_with_the_reason(tmp_path):
    ns = new_namespace()
    missing = tmp_path / "nope.yaml"
    node = NodeProcess("tracker_node", ns, {"calibration": str(missing)}, tmp_path / "t.log")
    try:
        assert node.wait(timeout=30) == 1
        assert f"cannot read calibration {missing}" in node.text()
    finally:
        node.close()
