"""Serial N-joint arms from an MJCF or URDF model: forward kinematics and IK (MuJoCo + mink).

A :class:`SerialArm` holds its effector (a site, or a body of a URDF) at a fixed height
above the table and a fixed orientation — the one it has at the home pose, e.g. a tool
pointing down — and moves it in the table plane, so it offers the planar interface of
:class:`icpi.robot.skill.ArmModel`: ``fk(q) → xy`` and ``ik(xy) → q`` in the task frame.

- **Model**: MuJoCo loads the file (MJCF or URDF, ``mujoco.MjSpec.from_file``); the arm's
  root body is placed at ``base_pose`` (x, y, z, yaw) in the task frame (origin at the
  ball's spot, z up, the table surface at z = 0). The same model is the twin's arm
  (:mod:`icpi.robot.twin`). Shipped models: ``robot/arms/ur5e.xml``, ``robot/arms/panda.xml``
  (kinematics from the vendors' published DH parameters; see each file).
- **Forward kinematics**: ``mj_kinematics`` on the effector frame.
- **Inverse kinematics**: `mink <https://github.com/kevinzakka/mink>`_ (differential IK
  on MuJoCo, a QP per step solved by DAQP): a frame task on the effector's full pose
  (position and orientation), a light posture task towards home (it picks the null-space
  motion of a redundant arm such as the 7-joint Panda) and the joint ranges as
  constraints. Points are solved in order, each from the previous solution, so a stroke
  stays on one IK branch; a point that does not converge to within ``IK_POSITION_TOL``
  and ``IK_ORIENTATION_TOL`` raises :class:`~icpi.robot.skill.Unreachable`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path

import mujoco
import numpy as np

# Shipped arm models (robot/arms/<name>.xml).
ARMS_DIR = Path(__file__).resolve().parent / "arms"
# IK convergence: effector position [m] and orientation [rad] error.
IK_POSITION_TOL = 1e-4
IK_ORIENTATION_TOL = 1e-3
# IK iterations (from the seed to the first point, then between consecutive points), and
# the joint step [rad] under which a solve has converged.
IK_MAX_ITER = 300
IK_STEP_TOL = 1e-10
# Weight of the posture task (towards home) against the effector pose task.
POSTURE_COST = 1e-4


def model_path(model: str) -> Path:
    """The file of an arm model: a shipped name (``ur5e``, ``panda``) or a path.

    Args:
        model: Name or path of an MJCF (``.xml``) or URDF (``.urdf``) file.

    Returns:
        The path.

    Raises:
        FileNotFoundError: If there is no such model.
    """
    shipped = ARMS_DIR / f"{model}.xml"
    if shipped.is_file():
        return shipped
    path = Path(model).expanduser()
    if not path.is_file():
        names = sorted(p.stem for p in ARMS_DIR.glob("*.xml"))
        raise FileNotFoundError(f"no arm model {model!r}: give a file or one of {names}")
    return path


def arm_spec(model: str, base_pose: Sequence[float]) -> mujoco.MjSpec:
    """The arm's MjSpec with its root body placed at ``base_pose`` in the task frame.

    Args:
        model: Shipped name or file (see :func:`model_path`).
        base_pose: x, y, z [m] and yaw [rad] of the arm's base in the task frame.

    Returns:
        The spec (not compiled).

    Raises:
        ValueError: If ``base_pose`` does not have 4 values or the model has no body.
    """
    if len(base_pose) != 4:
        raise ValueError(f"base_pose needs x, y, z, yaw; got {list(base_pose)}")
    spec = mujoco.MjSpec.from_file(str(model_path(model)))
    root = spec.worldbody.first_body()
    if root is None:
        raise ValueError(f"arm model {model!r} has no body")
    x, y, z, yaw = (float(v) for v in base_pose)
    root.pos = [x, y, z]
    root.quat = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
    return spec


class SerialArm:
    """An N-joint serial arm with its effector held at a height and orientation."""

    def __init__(
        self,
        model: str,
        joint_names: Sequence[str],
        base_pose: Sequence[float],
        home: Sequence[float],
        height: float,
        effector: str = "effector",
    ) -> None:
        """Load the model and fix the effector's orientation to its orientation at home.

        Args:
            model: Shipped name or file (see :func:`model_path`).
            joint_names: The arm's joints, in the order of every joint vector.
            base_pose: x, y, z [m], yaw [rad] of the base in the task frame.
            home: Home joint positions (the IK's first seed; sets the orientation).
            height: Effector height above the table (z in the task frame) [m].
            effector: Site (MJCF) or body (URDF) whose origin is the effector point.

        Raises:
            ValueError: On unknown joints or effector, or a home of the wrong length.
        """
        import mink  # optional heavy import only for serial arms

        self._mink = mink
        self.model = arm_spec(model, base_pose).compile()
        self.joint_names = tuple(joint_names)
        m = self.model
        try:
            self._qadr = np.array([m.joint(n).qposadr[0] for n in self.joint_names])
        except KeyError as err:
            raise ValueError(f"arm model has no joint {err}") from err
        self.home = np.asarray(home, dtype=np.float64)
        if self.home.shape != (len(self.joint_names),):
            raise ValueError(f"home needs {len(self.joint_names)} values")
        if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, effector) >= 0:
            self._frame = ("site", m.site(effector).id)
        elif mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, effector) >= 0:
            self._frame = ("body", m.body(effector).id)
        else:
            raise ValueError(f"arm model has no site or body {effector!r}")
        self.effector = effector
        self.source = model  # shipped name or file, and where its base stands (the twin)
        self.base_pose = tuple(float(v) for v in base_pose)
        self.height = float(height)
        self.data = mujoco.MjData(m)
        self._lock = threading.RLock()  # one MjData and IK state; planner and stops share it
        self.rotation = self._pose(self.home)[1]  # held along every stroke
        lo, hi = m.jnt_range[[m.joint(n).id for n in self.joint_names]].T
        self.position_range = (lo.copy(), hi.copy())
        self._config = mink.Configuration(m)
        self._task = mink.FrameTask(
            effector, self._frame[0], position_cost=1.0, orientation_cost=1.0, lm_damping=1e-6
        )
        self._posture = mink.PostureTask(m, cost=POSTURE_COST)
        q0 = m.qpos0.copy()
        q0[self._qadr] = self.home
        self._posture.set_target(q0)
        self._limits = [mink.ConfigurationLimit(m)]

    @property
    def n_joints(self) -> int:
        """Number of joints."""
        return len(self.joint_names)

    def _pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        kind, i = self._frame
        if kind == "site":
            return self.data.site_xpos[i].copy(), self.data.site_xmat[i].reshape(3, 3).copy()
        return self.data.xpos[i].copy(), self.data.xmat[i].reshape(3, 3).copy()

    def fk_xyz(self, q: np.ndarray) -> np.ndarray:
        """Effector position of joint positions.

        Args:
            q: Joint positions, shape (J,) or (N, J).

        Returns:
            Effector xyz in the task frame [m], shape (3,) or (N, 3).
        """
        q = np.asarray(q, dtype=np.float64)
        rows = np.atleast_2d(q)
        with self._lock:
            out = np.array([self._pose(row)[0] for row in rows])
        return out if q.ndim == 2 else out[0]

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Effector xy in the task frame [m] (as the planar models), same leading shape."""
        return self.fk_xyz(q)[..., :2]

    def ik(self, xy: np.ndarray, seed: np.ndarray | None = None) -> np.ndarray:
        """Joint positions that put the effector at each xy, at ``height``, held orientation.

        Args:
            xy: Effector positions in the task frame [m], shape (2,) or (N, 2), solved
                in order, each from the previous solution.
            seed: Where the first solve starts (default: home).

        Returns:
            Joint positions, shape (J,) or (N, J).

        Raises:
            Unreachable: If a point does not converge (out of reach, or of joint range).
        """
        with self._lock:
            return self._ik(np.asarray(xy, dtype=np.float64), seed)

    def _ik(self, xy: np.ndarray, seed: np.ndarray | None) -> np.ndarray:
        from icpi.robot.skill import Unreachable

        mink = self._mink
        points = np.atleast_2d(xy)
        q = self.model.qpos0.copy()
        q[self._qadr] = self.home if seed is None else np.asarray(seed, dtype=np.float64)
        self._config.update(q)
        so3 = mink.SO3.from_matrix(self.rotation)
        out = np.empty((len(points), self.n_joints))
        for k, p in enumerate(points):
            target = np.array([p[0], p[1], self.height])
            self._task.set_target(mink.SE3.from_rotation_and_translation(so3, target))
            for _ in range(IK_MAX_ITER):  # to convergence (smooth strokes), not to tolerance
                vel = mink.solve_ik(
                    self._config,
                    [self._task, self._posture],
                    dt=1.0,
                    solver="daqp",
                    damping=1e-9,
                    limits=self._limits,
                )
                self._config.integrate_inplace(vel, 1.0)
                if np.linalg.norm(vel) < IK_STEP_TOL:
                    break
            err = self._task.compute_error(self._config)
            if not (
                np.linalg.norm(err[:3]) < IK_POSITION_TOL
                and np.linalg.norm(err[3:]) < IK_ORIENTATION_TOL
            ):
                pos, _ = self._pose(self._config.q[self._qadr])
                raise Unreachable(
                    f"no IK solution for the effector at ({p[0]:.3f}, {p[1]:.3f},"
                    f" {self.height:.3f}) m with the held orientation: closest"
                    f" {np.linalg.norm(pos - target):.4f} m away (reach or joint range)"
                )
            out[k] = self._config.q[self._qadr]
        return out if xy.ndim == 2 else out[0]
