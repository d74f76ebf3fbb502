"""``icpi-tracker-node``: ball points in the task frame from a camera's images.

Subscribes ``image_topic`` (sensor_msgs/Image: rgb8, bgr8, rgba8 or bgra8) and
``camera_info_topic`` (sensor_msgs/CameraInfo); publishes ``ball_topic``
(geometry_msgs/PointStamped, the image's own stamp, ``frame_id`` the calibration's task
frame) for every frame with exactly one believable ball. The logic is
:class:`icpi.robot.tracker.BallTracker` (colour blobs, the calibration's table-plane
homography, outlier rejection); the calibration is the YAML of ``icpi-calibrate``.

Each image is tracked with the ``CameraInfo`` of its own stamp (as camera drivers publish
them), so a camera whose ``CameraInfo`` disagrees with the calibration (size or focal
length: re-configured) gets no point from its very first such frame until it is
calibrated again; frames
with two balls, a jump, a stamp that does not advance, or faster than ``max_rate`` are
dropped (logged once a second with a count); a camera that stops is reported every
``image_timeout`` and the arm node's ball watchdog aborts the trial.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, PointStamped
from rclpy.clock import Clock, ClockType  # type: ignore[attr-defined]
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from icpi.robot.params import TrackerConfig, declare_config, refuse_undeclared
from icpi.robot.ros_common import WarnThrottle, run_node, time_s
from icpi.robot.tracker import BallTracker, Calibration, TrackedPoint, rgb_from_image_fields

# Relative difference of CameraInfo's focal length from the calibration's that is refused.
FOCAL_TOLERANCE = 0.01
# CameraInfo stamps remembered (an image is tracked only with the CameraInfo of its stamp).
INFO_MEMORY = 30


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class TrackerNode(Node):
    """The ball tracker (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare the parameters, load the calibration and wire the topics.

        Args:
            **kwargs: Passed to :class:`rclpy.node.Node`.

        Raises:
            ValueError: On invalid parameters or a missing or malformed calibration.
        """
        super().__init__("icpi_tracker", **kwargs)
        self.cfg = declare_config(self, TrackerConfig)
        refuse_undeclared(self)
        if not self.cfg.calibration:
            raise ValueError("set the calibration parameter (the YAML written by icpi-calibrate)")
        self.calibration = Calibration.load(Path(self.cfg.calibration).expanduser())
        self.tracker = BallTracker(self.calibration, self.cfg.settings())
        self.warn = WarnThrottle(self)
        self._mismatch = ""
        # Verdict on the CameraInfo of each recent stamp ('' : matches the calibration), and
        # the newest image still waiting for its CameraInfo.
        self._infos: dict[int, str] = {}
        self._pending: Image | None = None
        self.last_image = time.monotonic()
        self.pub = self.create_publisher(PointStamped, self.cfg.ball_topic, qos_profile_sensor_data)
        self.create_subscription(
            Image, self.cfg.image_topic, self._on_image, qos_profile_sensor_data
        )
        self.create_subscription(
            CameraInfo, self.cfg.camera_info_topic, self._on_info, qos_profile_sensor_data
        )
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.cfg.image_timeout, self._check_camera, clock=steady)
        c = self.calibration
        self.get_logger().info(
            f"tracker ready: {c.width}x{c.height} px camera at"
            f" {np.round(c.position, 3).tolist()} m, points on {self.cfg.ball_topic}"
            f" in frame {c.frame_id!r}"
        )

    def _on_info(self, msg: CameraInfo) -> None:
        stamp = _ns(msg.header.stamp)
        self._infos[stamp] = self._check_info(msg)
        while len(self._infos) > INFO_MEMORY:
            self._infos.pop(next(iter(self._infos)))
        pending = self._pending
        if pending is not None and _ns(pending.header.stamp) == stamp:
            self._pending = None
            self._track(pending)

    def _check_info(self, msg: CameraInfo) -> str:
        """Why this camera no longer matches its calibration ('' when it does)."""
        c = self.calibration
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        why = ""
        if (msg.width, msg.height) != (c.width, c.height):
            why = f"camera is {msg.width}x{msg.height} px, calibrated at {c.width}x{c.height} px"
        elif abs(k[0, 0] / c.camera_matrix[0, 0] - 1.0) > FOCAL_TOLERANCE:
            why = f"focal length {k[0, 0]:.1f} px, calibrated {c.camera_matrix[0, 0]:.1f} px"
        if why and not self._mismatch:
            self.get_logger().error(f"{why}: no ball points until icpi-calibrate runs again")
        self._mismatch = why
        return why

    def _on_image(self, msg: Image) -> None:
        self.last_image = time.monotonic()
        if _ns(msg.header.stamp) in self._infos:
            self._track(msg)
            return
        if self._pending is not None:
            self.warn("image", "no CameraInfo with its stamp (older frame replaced)")
        self._pending = msg  # until its CameraInfo comes

    def _track(self, msg: Image) -> None:
        why = self._infos.get(_ns(msg.header.stamp), "")
        if why:
            self.warn("image", why)
            return
        early = self.tracker.admits(time_s(msg.header.stamp))
        if early is not None:  # a flood or a stamp gone back: not even decoded
            self.warn(f"frame ({early.kind})", early.reason)
            return
        try:
            rgb = rgb_from_image_fields(
                msg.encoding, msg.width, msg.height, msg.step, bytes(msg.data)
            )
        except ValueError as err:
            self.warn("image", str(err))
            return
        out = self.tracker.process(rgb, time_s(msg.header.stamp))
        if not isinstance(out, TrackedPoint):
            if out.kind != "no_ball":  # an empty frame (ball out of view) is no news
                self.warn(f"frame ({out.kind})", out.reason)
            return
        x, y, z = (float(v) for v in out.xyz)
        point = PointStamped(point=Point(x=x, y=y, z=z))
        point.header.stamp = msg.header.stamp
        point.header.frame_id = self.calibration.frame_id
        self.pub.publish(point)

    def _check_camera(self) -> None:
        silent = time.monotonic() - self.last_image
        if silent > self.cfg.image_timeout:
            self.get_logger().warning(
                f"no image on {self.cfg.image_topic} for {silent:.1f} s: no ball points"
            )


def main(args: list[str] | None = None) -> int:
    """Console script ``icpi-tracker-node``.

    Args:
        args: Command-line arguments (default ``sys.argv``).

    Returns:
        Exit code (1 on a bad parameter or calibration).
    """
    return run_node(TrackerNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
