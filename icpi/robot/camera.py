"""The twin's camera and the printed ArUco marker on its table (MuJoCo, OpenCV; no ROS).

The camera of the simulated arm is a MuJoCo camera placed by :class:`CameraSetup` (a
position and a point it looks at, in the task frame: origin at the ball's spot, z up, the
table at z = 0); it renders RGB frames headless (EGL, or OSMesa; see
:mod:`icpi.envs.gl`). Its intrinsics are those of an ideal pinhole without distortion,
in OpenCV's convention (pixel centres at integer coordinates), so the ROS
``CameraInfo`` of the twin, the tracker and the calibration all agree with what MuJoCo
draws.

The marker is an ArUco marker (OpenCV's dictionaries) printed with a white quiet zone and
lying flat on the table: :class:`MarkerSetup` gives its centre and yaw in the task frame.
Yaw 0 means the printed image is read from above with its top edge towards +y and its
left-to-right direction along +x. Its corners, in OpenCV's order (top-left, top-right,
bottom-right, bottom-left of the printed image), are :meth:`MarkerSetup.corners`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import cv2

# Pixels per marker bit in the printed image and the texture (a 4x4 marker has 6x6 bits
# with its black border).
PIXELS_PER_BIT = 16
# White quiet zone around the marker, in bits (OpenCV's detector needs at least one).
QUIET_BITS = 2
# The camera in the twin's scene.
CAMERA_NAME = "tracker_camera"
MARKER_NAME = "aruco_marker"


@dataclass(frozen=True)
class CameraSetup:
    """A pinhole camera looking at the table (task frame, metres, degrees)."""

    position: tuple[float, float, float] = (0.45, -0.5, 1.25)
    """Optical centre in the task frame [m]."""
    look_at: tuple[float, float, float] = (0.45, 0.0, 0.0)
    """Point on the optical axis [m]."""
    fovy: float = 50.0
    """Vertical field of view [deg]."""
    width: int = 320
    """Image width [px]."""
    height: int = 240
    """Image height [px]."""

    def rotation(self) -> np.ndarray:
        """Task-from-camera rotation of the *optical* frame (x right, y down, z forward).

        Returns:
            A (3, 3) rotation matrix whose columns are the optical axes in the task frame.

        The image's x axis is horizontal (a camera looking straight down has +x to the
        right).

        Raises:
            ValueError: If the camera looks at its own position.
        """
        forward = np.subtract(self.look_at, self.position).astype(np.float64)
        if np.linalg.norm(forward) < 1e-9:
            raise ValueError("the camera's look_at point must differ from its position")
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        if np.linalg.norm(right) < 1e-6:  # straight down (or up)
            right = np.array([1.0, 0.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return np.stack([right, down, forward], axis=1)

    def camera_matrix(self) -> np.ndarray:
        """The intrinsic matrix K (OpenCV convention: pixel centres at integers).

        MuJoCo's OpenGL image spans [0, width] with the optical axis at its middle, so the
        principal point lies at ((width - 1) / 2, (height - 1) / 2) in OpenCV pixels.

        Returns:
            K (3, 3).
        """
        f = 0.5 * self.height / math.tan(math.radians(self.fovy) / 2.0)
        return np.array(
            [[f, 0.0, (self.width - 1) / 2.0], [0.0, f, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]]
        )

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels of task-frame points (the ideal camera: ground truth for tests).

        Args:
            points: (N, 3) or (3,) points in the task frame [m].

        Returns:
            (N, 2) or (2,) pixel coordinates (u right, v down).
        """
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        cam = (p - np.asarray(self.position)) @ self.rotation()
        uvw = cam @ self.camera_matrix().T
        uv = uvw[:, :2] / uvw[:, 2:3]
        out: np.ndarray = uv if np.ndim(points) == 2 else uv[0]
        return out


@dataclass(frozen=True)
class MarkerSetup:
    """An ArUco marker lying flat on the table."""

    dictionary: str = "DICT_4X4_50"
    """OpenCV's predefined dictionary (``cv2.aruco.<name>``)."""
    marker_id: int = 0
    """Marker id in the dictionary."""
    size: float = 0.2
    """Side of the black square [m] (without the white quiet zone)."""
    center: tuple[float, float] = (0.25, 0.3)
    """Centre in the task frame [m]."""
    yaw: float = 0.0
    """Rotation about z [rad]; 0: the printed image's top edge towards +y."""

    def corners(self) -> np.ndarray:
        """The four corners in the task frame, in OpenCV's order (z = 0).

        Returns:
            (4, 3) corners: top-left, top-right, bottom-right, bottom-left.
        """
        h = self.size / 2.0
        local = np.array([[-h, h], [h, h], [h, -h], [-h, -h]])
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        xy = local @ np.array([[c, s], [-s, c]]) + np.asarray(self.center)
        return np.column_stack([xy, np.zeros(4)])


def aruco_dictionary(name: str) -> cv2.aruco.Dictionary:
    """OpenCV's predefined ArUco dictionary of that name.

    Args:
        name: e.g. ``DICT_4X4_50``.

    Returns:
        The ``cv2.aruco.Dictionary``.

    Raises:
        ValueError: On an unknown name.
    """
    import cv2

    code = getattr(cv2.aruco, name, None)
    if not name.startswith("DICT_") or not isinstance(code, int):
        known = sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_"))
        raise ValueError(f"unknown ArUco dictionary {name!r}; one of {', '.join(known)}")
    return cv2.aruco.getPredefinedDictionary(code)


def marker_image(marker: MarkerSetup, pixels_per_bit: int = PIXELS_PER_BIT) -> np.ndarray:
    """The printable marker: black square and bits with a white quiet zone.

    Args:
        marker: Which marker.
        pixels_per_bit: Resolution of the image.

    Returns:
        A grey image (uint8), square; the marker proper spans all but ``QUIET_BITS`` bits
        on each side.

    Raises:
        ValueError: On an unknown dictionary or an id outside it.
    """
    import cv2

    dictionary = aruco_dictionary(marker.dictionary)
    n_bits = int(dictionary.markerSize) + 2
    n_ids = len(dictionary.bytesList)
    if not 0 <= marker.marker_id < n_ids:
        raise ValueError(
            f"marker id {marker.marker_id} outside {marker.dictionary} (0..{n_ids - 1})"
        )
    side = n_bits * pixels_per_bit
    inner = cv2.aruco.generateImageMarker(dictionary, marker.marker_id, side, borderBits=1)
    pad = QUIET_BITS * pixels_per_bit
    out: np.ndarray = cv2.copyMakeBorder(inner, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    return out


def add_marker(spec: object, marker: MarkerSetup) -> None:
    """Lay the marker on the table of a MuJoCo scene (visual only: nothing collides with it).

    Args:
        spec: The scene's ``mujoco.MjSpec`` (changed in place).
        marker: Which marker and where.
    """
    import mujoco

    assert isinstance(spec, mujoco.MjSpec)
    img = marker_image(marker)
    rgb = np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    tex = spec.add_texture(
        name=MARKER_NAME,
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        width=rgb.shape[1],
        height=rgb.shape[0],
        nchannel=3,
    )
    tex.data = rgb.tobytes()
    mat = spec.add_material(name=MARKER_NAME)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = MARKER_NAME
    n_bits = rgb.shape[0] / PIXELS_PER_BIT
    half = 0.5 * marker.size * n_bits / (n_bits - 2 * QUIET_BITS)
    spec.worldbody.add_geom(
        name=MARKER_NAME,
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[half, half, 0.01],
        pos=[marker.center[0], marker.center[1], 0.0005],
        quat=[math.cos(marker.yaw / 2), 0.0, 0.0, math.sin(marker.yaw / 2)],
        material=MARKER_NAME,
        contype=0,
        conaffinity=0,
        group=1,
    )


def add_camera(spec: object, camera: CameraSetup) -> None:
    """Add the camera to a MuJoCo scene, with an offscreen buffer of its image size.

    Args:
        spec: The scene's ``mujoco.MjSpec`` (changed in place).
        camera: Where it is and what it sees.
    """
    import mujoco

    assert isinstance(spec, mujoco.MjSpec)
    rot = camera.rotation()
    # MuJoCo's camera looks along its -z with +y up: x = right, y = -down.
    xyaxes = [*rot[:, 0], *(-rot[:, 1])]
    cam = spec.worldbody.add_camera(name=CAMERA_NAME, pos=list(camera.position), fovy=camera.fovy)
    cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    cam.alt.xyaxes = xyaxes
    spec.visual.global_.offwidth = max(int(spec.visual.global_.offwidth), camera.width)
    spec.visual.global_.offheight = max(int(spec.visual.global_.offheight), camera.height)


class CameraRenderer:
    """Renders the scene camera's RGB frames (no shadows or reflections: 5–10x cheaper)."""

    def __init__(self, model: object, camera: CameraSetup) -> None:
        """Create the offscreen renderer.

        Args:
            model: The compiled ``mujoco.MjModel`` holding :data:`CAMERA_NAME`.
            camera: The camera (its image size).
        """
        import mujoco

        self._mujoco = mujoco
        self.camera = camera
        self._renderer = mujoco.Renderer(model, camera.height, camera.width)

    def render(self, data: object) -> np.ndarray:
        """One frame of the state in ``data``.

        Args:
            data: ``mujoco.MjData`` with positions and kinematics up to date.

        Returns:
            RGB image (height, width, 3) uint8.
        """
        flags = self._mujoco.mjtRndFlag
        self._renderer.update_scene(data, camera=CAMERA_NAME)
        self._renderer.scene.flags[flags.mjRND_SHADOW] = False
        self._renderer.scene.flags[flags.mjRND_REFLECTION] = False
        frame: np.ndarray = self._renderer.render().copy()
        return frame

    def close(self) -> None:
        """Free the GL context."""
        self._renderer.close()


def camera_setup_from(values: Sequence[float], fovy: float, size: Sequence[int]) -> CameraSetup:
    """A camera from flat parameter values.

    Args:
        values: position x, y, z and look-at x, y, z [m].
        fovy: Vertical field of view [deg].
        size: width, height [px].

    Returns:
        The camera.

    Raises:
        ValueError: On malformed values.
    """
    if len(values) != 6 or len(size) != 2:
        raise ValueError("camera_pose needs 6 values (position, look-at) and camera_size 2")
    if not 1.0 < fovy < 170.0 or min(size) < 16:
        raise ValueError(f"camera fovy {fovy} deg or size {list(size)} px out of range")
    p = tuple(float(v) for v in values)
    cam = CameraSetup(
        (p[0], p[1], p[2]), (p[3], p[4], p[5]), float(fovy), int(size[0]), int(size[1])
    )
    cam.rotation()  # refuses a camera looking at itself
    return cam
