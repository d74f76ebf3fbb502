"""The MuJoCo twin behind the simulated arm node (no ROS).

The twin is the ball-roll (or slide) task of :mod:`icpi.envs` with its effector driven by
an arm: a joint trajectory is interpolated linearly in joint space at every physics step
(from the step index, as the in-process tasks do), mapped through the arm's forward
kinematics and fed to the effector's position actuators. So the same θ, planned by
:func:`icpi.robot.skill.plan_trial` with ``sample_dt`` equal to the physics step, gives the
same ball path as :meth:`icpi.envs.base.Task.rollout`: within micrometres for the ball
roll; within about a millimetre for the slide, whose puck settles on the table during the
approach (in-process it starts unsettled) and slides under Coulomb friction.

The joint state read back is the inverse kinematics of the effector's actual position,
and its velocity the Jacobian-inverse of the effector's velocity (finite difference).
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from icpi.envs import make_task
from icpi.envs.base import Instance
from icpi.robot.skill import SKILLS, ArmModel


class Twin:
    """A persistent MuJoCo scene driven by joint trajectories."""

    def __init__(self, skill: str, arm: ArmModel, home: Sequence[float], physics: Sequence[float]):
        """Build the scene with the effector at home and the object on its spot.

        Args:
            skill: Twin task id (a key of :data:`SKILLS`).
            arm: Arm model (maps joints to the effector's xy).
            home: Home joint positions.
            physics: Hidden physical parameters, in sorted name order.

        Raises:
            ValueError: On an unknown skill or a physics value outside its range.
        """
        if skill not in SKILLS:
            raise ValueError(f"the twin runs {list(SKILLS)}, not {skill!r}")
        self.task = make_task(skill)
        names = sorted(self.task.physics_ranges)
        if len(physics) != len(names):
            raise ValueError(f"physics needs {len(names)} values: {names}")
        goal = self.task.fixed_goal
        self.instance: Instance = self.task.make_instance(
            goal=goal, physics=dict(zip(names, map(float, physics), strict=True))
        )
        self.arm = arm
        self.home = np.asarray(home, dtype=np.float64)
        self.model = self.task.model(self.instance)
        self.data = mujoco.MjData(self.model)
        self.dt = float(self.model.opt.timestep)
        m = self.model
        self._qadr = np.array([m.joint(n).qposadr[0] for n in self.task.effector_joints])
        self._vadr = np.array([m.joint(n).dofadr[0] for n in self.task.effector_joints])
        self._obj_q = np.setdiff1d(np.arange(m.nq), self._qadr)
        self._obj_v = np.setdiff1d(np.arange(m.nv), self._vadr)
        self._sensor = int(m.sensor(self.task.tracked_sensor).adr[0])
        # Active trajectory: times (N+1,) from 0 and joint positions (N+1, J); the step count.
        self._times: np.ndarray | None = None
        self._points: np.ndarray | None = None
        self._step = 0
        mujoco.mj_resetData(m, self.data)
        self.data.qpos[self._qadr] = arm.fk(self.home)
        mujoco.mj_forward(m, self.data)
        self._hold = self.effector_xy()

    # ------------------------------------------------------------------ state
    @property
    def time(self) -> float:
        """Simulated time [s]."""
        return float(self.data.time)

    def effector_xy(self) -> np.ndarray:
        """The effector's actual position [m]."""
        out: np.ndarray = self.data.qpos[self._qadr].copy()
        return out

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint positions and velocities read from the effector.

        Returns:
            ``(positions, velocities)``.
        """
        xy = self.effector_xy()
        v = self.data.qvel[self._vadr]
        q = self.arm.ik(xy)
        eps = 1e-5
        qdot = (self.arm.ik(xy + eps * v) - q) / eps
        return q, qdot

    def object_xyz(self) -> np.ndarray:
        """Position of the tracked object (the ball) [m]."""
        out: np.ndarray = self.data.sensordata[self._sensor : self._sensor + 3].copy()
        return out

    def reset_object(self) -> None:
        """Put the object back on its spot, at rest (the person who fetches the ball)."""
        self.data.qpos[self._obj_q] = self.model.qpos0[self._obj_q]
        self.data.qvel[self._obj_v] = 0.0
        self.data.qacc_warmstart[:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ commands
    def command(
        self, times: Sequence[float], positions: np.ndarray, reset_at_home_tol: float | None
    ) -> None:
        """Start a joint trajectory now (it replaces the running one).

        The current joint positions are its implicit point at t = 0.

        Args:
            times: Time of each point from now [s], increasing, > 0.
            positions: Joint positions (N, J).
            reset_at_home_tol: When the arm is within this of home (joint-wise), the
                object is put back first; ``None`` never does.

        Raises:
            ValueError: On a malformed trajectory.
        """
        t = np.asarray(times, dtype=np.float64)
        p = np.asarray(positions, dtype=np.float64)
        if p.ndim != 2 or p.shape != (len(t), self.arm.n_joints) or len(t) == 0:
            raise ValueError(f"trajectory of shape {p.shape} for {len(t)} times")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
            raise ValueError("trajectory holds NaN or inf")
        if t[0] <= 0 or np.any(np.diff(t) <= 0):
            raise ValueError("trajectory times must increase from above 0")
        q_now, _ = self.joint_state()
        if reset_at_home_tol is not None and np.max(np.abs(q_now - self.home)) <= reset_at_home_tol:
            self.reset_object()
        self._times = np.concatenate([[0.0], t])
        self._points = np.vstack([q_now, p])
        self._step = 0

    def _reference(self) -> np.ndarray:
        if self._times is None or self._points is None:
            return self._hold
        t = self._step * self.dt
        if t >= self._times[-1]:
            self._hold = self.arm.fk(self._points[-1])
            self._times = self._points = None
            return self._hold
        q = np.array(
            [np.interp(t, self._times, self._points[:, j]) for j in range(self._points.shape[1])]
        )
        out: np.ndarray = self.arm.fk(q)
        return out

    def step(self, n: int = 1) -> None:
        """Advance the physics by ``n`` steps.

        Args:
            n: Number of steps.
        """
        for _ in range(n):
            self.data.ctrl[:2] = self._reference()
            mujoco.mj_step(self.model, self.data)
            self._step += 1
