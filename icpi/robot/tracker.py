"""The ball tracker's logic: pixels → ball point in the task frame (OpenCV; no ROS).

``icpi-tracker-node`` (:mod:`icpi.robot.tracker_node`) feeds every camera frame to a
:class:`BallTracker`, which

1. finds candidate blobs of the ball's colour (HSV thresholds, a morphological opening,
   connected components);
2. maps each blob's centroid through the camera calibration (:class:`Calibration`,
   written by ``icpi-calibrate``) onto the plane of the ball's centre: the ray through the
   undistorted pixel meets the plane z = ``plane_height`` (the ball's radius) — a
   homography of the table plane, lifted by the ball's radius;
3. keeps only blobs whose size matches a ball of that radius seen from that distance
   (``size_tolerance``) and that lie in ``table_box``;
4. rejects outliers: a frame whose stamp does not advance, frames faster than
   ``max_rate`` (a flooding camera), a point further from the track than ``max_speed``
   allows since the last one, and a frame with several candidates that the track cannot
   tell apart (two balls). A ball that really moved elsewhere (put back on its spot) is
   taken again after ``reacquire_frames`` consecutive frames that agree.

Every accepted point carries the image's own stamp (:class:`TrackedPoint`); a rejected
frame says why (:class:`Rejected`), for the node's throttled log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from icpi.errors import UserError

# Format tag of the calibration YAML.
CALIBRATION_FORMAT = "icpi-camera-calibration/1"


class CalibrationError(UserError, ValueError):
    """A calibration that cannot be made or read (one line for the user)."""


@dataclass(frozen=True)
class Calibration:
    """A camera's intrinsics and its pose in the task frame (what ``icpi-calibrate`` writes).

    The pose is the optical frame's (x right, y down, z forward): a task point X is seen
    at ``K · (R_cam_from_task · X + t)``, with ``R_cam_from_task = rotation.T`` and
    ``t = -rotation.T · position``.
    """

    width: int
    """Image width [px]."""
    height: int
    """Image height [px]."""
    camera_matrix: np.ndarray
    """K (3, 3)."""
    distortion: np.ndarray
    """OpenCV (plumb_bob) distortion coefficients (k1, k2, p1, p2, k3 ...)."""
    rotation: np.ndarray
    """Task-from-camera rotation (3, 3): the optical axes in the task frame."""
    position: np.ndarray
    """Optical centre in the task frame [m] (3,)."""
    frame_id: str = "task"
    """The task frame's name (the tracker's points carry it)."""
    reprojection_error: float = 0.0
    """RMS reprojection error of the marker's corners at calibration [px]."""
    meta: dict[str, Any] = field(default_factory=dict)
    """What it was made from (marker, image), written to the YAML as is."""

    def homography(self, plane_height: float) -> np.ndarray:
        """Undistorted pixel → task-frame (x, y) on the plane z = ``plane_height``.

        Args:
            plane_height: Height of the plane over the table [m].

        Returns:
            H (3, 3) with (x, y, 1) ∝ H · (u, v, 1).
        """
        r = self.rotation.T  # camera from task
        t = -r @ self.position
        forward = self.camera_matrix @ np.column_stack(
            [r[:, 0], r[:, 1], r[:, 2] * plane_height + t]
        )
        out: np.ndarray = np.linalg.inv(forward)
        return out

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels without lens distortion (same K).

        Args:
            pixels: (N, 2) pixel coordinates.

        Returns:
            (N, 2) undistorted pixel coordinates.
        """
        pts = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        if not np.any(self.distortion):
            return pts
        import cv2

        out: np.ndarray = cv2.undistortPoints(
            pts.reshape(-1, 1, 2), self.camera_matrix, self.distortion, P=self.camera_matrix
        ).reshape(-1, 2)
        return out

    def to_plane(self, pixels: np.ndarray, plane_height: float) -> np.ndarray:
        """Task-frame points on the plane z = ``plane_height`` seen at these pixels.

        Args:
            pixels: (N, 2) pixel coordinates (distorted, as in the image).
            plane_height: Height of the plane [m].

        Returns:
            (N, 3) points [m].
        """
        uv = self.undistort(pixels)
        xyw = np.column_stack([uv, np.ones(len(uv))]) @ self.homography(plane_height).T
        xy = xyw[:, :2] / xyw[:, 2:3]
        return np.column_stack([xy, np.full(len(xy), plane_height)])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels of task-frame points (with the lens distortion).

        Args:
            points: (N, 3) points [m].

        Returns:
            (N, 2) pixels.
        """
        import cv2

        r = self.rotation.T
        rvec, _ = cv2.Rodrigues(r)
        uv, _ = cv2.projectPoints(
            np.asarray(points, dtype=np.float64).reshape(-1, 1, 3),
            rvec,
            -r @ self.position,
            self.camera_matrix,
            self.distortion,
        )
        out: np.ndarray = uv.reshape(-1, 2)
        return out

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping (plain lists and numbers)."""
        return {
            "format": CALIBRATION_FORMAT,
            "frame_id": self.frame_id,
            "image_width": self.width,
            "image_height": self.height,
            "camera_matrix": [float(v) for v in self.camera_matrix.ravel()],
            "distortion_model": "plumb_bob",
            "distortion_coefficients": [float(v) for v in self.distortion.ravel()],
            "camera_position": [float(v) for v in self.position],
            "camera_rotation": [float(v) for v in self.rotation.ravel()],
            "reprojection_error_px": float(self.reprojection_error),
            **({"made_from": self.meta} if self.meta else {}),
        }

    def save(self, path: Path) -> None:
        """Write the YAML atomically (a comment header says what it is).

        Args:
            path: Target file.
        """
        from icpi.core.files import atomic_path

        text = (
            "# Camera calibration of the ball tracker (icpi-calibrate): intrinsics and the\n"
            "# camera's pose in the task frame (origin at the ball's spot, z up, metres).\n"
            "# camera_rotation: columns = the optical axes (x right, y down, z forward).\n"
            + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)
        )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read and check a calibration YAML.

        Args:
            path: The file.

        Returns:
            The calibration.

        Raises:
            CalibrationError: If the file is missing, not this format, or its numbers are
                malformed (wrong counts, non-finite, not a rotation).
        """
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
            raise CalibrationError(f"cannot read calibration {path}: {err}") from None
        if not isinstance(raw, dict) or raw.get("format") != CALIBRATION_FORMAT:
            raise CalibrationError(
                f"{path} is not a camera calibration of icpi-calibrate (format"
                f" {CALIBRATION_FORMAT!r}); make one with icpi-calibrate"
            )
        try:
            width, height = int(raw["image_width"]), int(raw["image_height"])
            k = _numbers(raw["camera_matrix"], 9, "camera_matrix").reshape(3, 3)
            dist = _numbers(raw.get("distortion_coefficients", []), None, "distortion")
            pos = _numbers(raw["camera_position"], 3, "camera_position")
            rot = _numbers(raw["camera_rotation"], 9, "camera_rotation").reshape(3, 3)
        except (KeyError, TypeError, ValueError) as err:
            raise CalibrationError(f"malformed calibration {path}: {err}") from None
        if width < 1 or height < 1 or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise CalibrationError(f"malformed calibration {path}: image size or focal length")
        if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
            raise CalibrationError(f"malformed calibration {path}: camera_rotation is no rotation")
        return cls(
            width=width,
            height=height,
            camera_matrix=k,
            distortion=dist,
            rotation=rot,
            position=pos,
            frame_id=str(raw.get("frame_id", "task")),
            reprojection_error=float(raw.get("reprojection_error_px", 0.0)),
            meta=dict(raw.get("made_from") or {}),
        )


def _numbers(values: Any, count: int | None, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if count is not None and arr.size != count:
        raise ValueError(f"{name} needs {count} numbers, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf")
    return arr


# ---------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class TrackerSettings:
    """How the tracker finds the ball and which points it believes."""

    hsv_low: tuple[int, int, int] = (8, 120, 40)
    """Lowest ball colour, OpenCV HSV (hue 0–179, saturation and value 0–255)."""
    hsv_high: tuple[int, int, int] = (30, 255, 255)
    """Highest ball colour (a red ball wraps around hue 0: use two trackers' worth of care)."""
    ball_radius: float = 0.03
    """Ball radius [m]: the height of its centre over the table."""
    size_tolerance: float = 0.5
    """A blob's equivalent radius may differ from the expected one by this fraction."""
    table_box: tuple[float, float, float, float] = (-0.5, 1.5, -0.6, 0.6)
    """Points outside x_min, x_max, y_min, y_max [m] are not the ball."""
    max_speed: float = 6.0
    """Fastest plausible ball [m/s]: further from the track's last point is an outlier."""
    gate_margin: float = 0.02
    """Slack of that gate [m] (noise, blur)."""
    reacquire_frames: int = 3
    """Consecutive agreeing frames that take the ball where it now is (put back, lost)."""
    lost_after: float = 0.5
    """A track silent this long [s of image stamps] starts afresh."""
    max_rate: float = 120.0
    """Frames stamped closer than 1/max_rate [s] to the last tracked one are skipped."""


@dataclass(frozen=True)
class TrackedPoint:
    """The ball in one frame."""

    stamp: float
    """The image's stamp [s]."""
    xyz: np.ndarray
    """Ball centre in the task frame [m]."""
    pixel: tuple[float, float]
    """Blob centroid [px]."""
    radius_px: float
    """Blob equivalent radius [px]."""


@dataclass(frozen=True)
class Rejected:
    """A frame without a ball point, and why."""

    stamp: float
    reason: str
    kind: str
    """Short key for counting: no_ball, ambiguous, outlier, stamp, rate, size, image."""


@dataclass
class _Candidate:
    pixel: tuple[float, float]
    radius_px: float
    xyz: np.ndarray


class BallTracker:
    """Frames in, ball points out (see the module docstring). Not thread-safe: one caller."""

    def __init__(self, calibration: Calibration, settings: TrackerSettings | None = None) -> None:
        """Prepare the colour thresholds and the plane mapping.

        Args:
            calibration: The camera's calibration.
            settings: Thresholds and gates (defaults: the twin's orange ball).

        Raises:
            ValueError: On malformed settings.
        """
        self.cal = calibration
        self.settings = s = settings or TrackerSettings()
        if not (len(s.hsv_low) == 3 and len(s.hsv_high) == 3 and len(s.table_box) == 4):
            raise ValueError("hsv_low and hsv_high need 3 values, table_box 4")
        if s.ball_radius <= 0 or s.max_speed <= 0 or s.max_rate <= 0:
            raise ValueError("ball_radius, max_speed and max_rate must be positive")
        self._h_plane = calibration.homography(s.ball_radius)
        self._last: TrackedPoint | None = None
        self._pending: list[_Candidate] = []
        self._pending_stamp = -math.inf
        self._last_stamp = -math.inf
        self.counts: dict[str, int] = {}

    def reset(self) -> None:
        """Forget the track (the next single ball is taken wherever it is)."""
        self._last = None
        self._pending = []

    # ------------------------------------------------------------------ frames
    def admits(self, stamp: float) -> Rejected | None:
        """Whether a frame of this stamp would be looked at (before decoding it).

        Args:
            stamp: The image's stamp [s].

        Returns:
            Why not (a stamp that does not advance, or closer than 1/``max_rate`` to the
            last tracked frame: a flood), or ``None``.
        """
        if not math.isfinite(stamp) or stamp <= self._last_stamp:
            return self._reject(
                stamp,
                "stamp",
                f"image stamp {stamp:.3f} s does not advance ({self._last_stamp:.3f} s)",
            )
        rate = self.settings.max_rate
        if stamp - self._last_stamp < 1.0 / rate:
            return self._reject(stamp, "rate", f"frame within 1/{rate:g} s of the last one")
        return None

    def process(self, image: np.ndarray, stamp: float) -> TrackedPoint | Rejected:
        """Track the ball in one RGB frame.

        Args:
            image: (height, width, 3) uint8 RGB.
            stamp: The image's stamp [s] (its header; carried by the point).

        Returns:
            The ball point, or why there is none.
        """
        s = self.settings
        early = self.admits(stamp)
        if early is not None:
            return early
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            return self._reject(
                stamp, "image", f"not an RGB uint8 image: {image.shape} {image.dtype}"
            )
        if image.shape[:2] != (self.cal.height, self.cal.width):
            return self._reject(
                stamp,
                "image",
                f"image {image.shape[1]}x{image.shape[0]} px, calibrated for"
                f" {self.cal.width}x{self.cal.height} px: calibrate again",
            )
        self._last_stamp = stamp
        candidates = self.candidates(image)
        if self._last is not None and stamp - self._last.stamp > s.lost_after:
            self._last = None
        if not candidates:
            return self._reject(stamp, "no_ball", "no ball in the image")
        if self._last is None:
            if len(candidates) > 1:
                return self._reject(
                    stamp, "ambiguous", f"{len(candidates)} ball candidates and no track to choose"
                )
            return self._accept(stamp, candidates[0])
        gate = s.max_speed * (stamp - self._last.stamp) + s.gate_margin
        near = [c for c in candidates if np.linalg.norm(c.xyz[:2] - self._last.xyz[:2]) <= gate]
        if len(near) == 1:
            self._pending = []
            return self._accept(stamp, near[0])
        if len(near) > 1:
            return self._reject(stamp, "ambiguous", f"{len(near)} ball candidates on the track")
        # Nothing on the track: a glitch, or the ball is elsewhere now (put back on its spot):
        # a single candidate that stays put for reacquire_frames frames is taken.
        if len(candidates) == 1:
            if not self._agrees(candidates[0], stamp):
                self._pending = []
            self._pending.append(candidates[0])
            self._pending_stamp = stamp
            if len(self._pending) >= s.reacquire_frames:
                self._pending = []
                return self._accept(stamp, candidates[0])
        else:
            self._pending = []
        best = min(np.linalg.norm(c.xyz[:2] - self._last.xyz[:2]) for c in candidates)
        return self._reject(
            stamp, "outlier", f"ball {best:.3f} m from the track (gate {gate:.3f} m): outlier"
        )

    def _agrees(self, cand: _Candidate, stamp: float) -> bool:
        if not self._pending:
            return False
        s = self.settings
        gate = s.max_speed * (stamp - self._pending_stamp) + s.gate_margin
        return bool(np.linalg.norm(cand.xyz[:2] - self._pending[-1].xyz[:2]) <= gate)

    def _accept(self, stamp: float, cand: _Candidate) -> TrackedPoint:
        point = TrackedPoint(stamp, cand.xyz, cand.pixel, cand.radius_px)
        self._last = point
        self.counts["ok"] = self.counts.get("ok", 0) + 1
        return point

    def _reject(self, stamp: float, kind: str, reason: str) -> Rejected:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return Rejected(stamp, reason, kind)

    def candidates(self, image: np.ndarray) -> list[_Candidate]:
        """Blobs of the ball's colour and size inside the table box, largest first.

        Args:
            image: RGB frame.

        Returns:
            The candidates (pixel centroid, equivalent radius, task-frame point).
        """
        import cv2

        s = self.settings
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        mask = cv2.inRange(hsv, np.array(s.hsv_low, np.uint8), np.array(s.hsv_high, np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _KERNEL)
        n, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        out = []
        for i in range(1, n):
            area = float(stats[i, cv2.CC_STAT_AREA])
            pixel = (float(centroids[i, 0]), float(centroids[i, 1]))
            xyz = self.cal.to_plane(np.array([pixel]), s.ball_radius)[0]
            x_lo, x_hi, y_lo, y_hi = s.table_box
            if not (x_lo <= xyz[0] <= x_hi and y_lo <= xyz[1] <= y_hi):
                continue
            radius = math.sqrt(area / math.pi)
            expected = self.expected_radius_px(xyz)
            if abs(radius - expected) > s.size_tolerance * expected:
                continue
            out.append((area, _Candidate(pixel, radius, xyz)))
        out.sort(key=lambda item: -item[0])
        return [c for _, c in out]

    def expected_radius_px(self, xyz: np.ndarray) -> float:
        """Apparent radius [px] of a ball of ``ball_radius`` centred at ``xyz``."""
        distance = float(np.linalg.norm(np.asarray(xyz) - self.cal.position))
        focal = 0.5 * float(self.cal.camera_matrix[0, 0] + self.cal.camera_matrix[1, 1])
        return focal * self.settings.ball_radius / max(distance, 1e-6)


_KERNEL = np.ones((3, 3), np.uint8)

# sensor_msgs/Image encodings the tracker reads: channels and the order to RGB.
_ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
}


def rgb_from_image_fields(
    encoding: str, width: int, height: int, step: int, data: bytes
) -> np.ndarray:
    """An RGB array from the fields of a ``sensor_msgs/Image``.

    Args:
        encoding: ``rgb8``, ``bgr8``, ``rgba8`` or ``bgra8``.
        width: Width [px].
        height: Height [px].
        step: Bytes per row (may include padding).
        data: The pixel bytes.

    Returns:
        (height, width, 3) uint8 RGB (a copy).

    Raises:
        ValueError: On another encoding or sizes that do not match the data.
    """
    if encoding not in _ENCODINGS:
        raise ValueError(f"image encoding {encoding!r} is not colour (use {', '.join(_ENCODINGS)})")
    channels, order = _ENCODINGS[encoding]
    if width < 1 or height < 1 or step < width * channels or len(data) < step * height:
        raise ValueError(f"image {width}x{height} step {step} does not match {len(data)} bytes")
    rows = np.frombuffer(data, np.uint8, count=step * height).reshape(height, step)
    pixels = rows[:, : width * channels].reshape(height, width, channels)
    return np.ascontiguousarray(pixels[:, :, list(order)])
