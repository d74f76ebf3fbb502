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
from scipy.interpolate import BPoly

from icpi.envs import make_task
from icpi.envs.base import Instance
from icpi.robot.skill import SKILLS, ArmModel

# Tolerance of the time grid [s].
_TIME_EPS = 1e-9


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
        # Running trajectory: its piecewise polynomial in absolute time and its end; the
        # scheduled one (start, knot times, points (N, derivatives, J), reset tolerance).
        self._poly: BPoly | None = None
        self._end = 0.0
        self._pending: tuple[float, np.ndarray, np.ndarray, float | None] | None = None
        self._step = 0
        mujoco.mj_resetData(m, self.data)
        self.data.qpos[self._qadr] = arm.fk(self.home)
        mujoco.mj_forward(m, self.data)
        self._hold = self.home.copy()  # joint reference while no trajectory runs

    # ------------------------------------------------------------------ state
    @property
    def time(self) -> float:
        """Simulated time [s], from the step count (exact on the step grid)."""
        return self._step * self.dt

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
        self,
        times: Sequence[float],
        positions: np.ndarray,
        reset_at_home_tol: float | None,
        start: float | None = None,
        velocities: np.ndarray | None = None,
        accelerations: np.ndarray | None = None,
    ) -> float:
        """Schedule a joint trajectory; at its start it replaces the running one.

        As in ``joint_trajectory_controller``: the trajectory starts at ``start`` (its
        header stamp; ``None``: now) and the running one is followed until then; from
        its implicit point at t = 0, the reference at that moment (position, velocity,
        acceleration: the controller starts from its desired state), it interpolates
        with quintic segments when velocities and accelerations are given, cubic with
        velocities only, linear with positions only. A trajectory planned from the
        reference so continues it without a jump. One that arrives late starts at once
        from the reference, towards its points still ahead.

        Args:
            times: Time of each point from ``start`` [s], increasing, > 0.
            positions: Joint positions (N, J).
            reset_at_home_tol: When the reference is within this of home (joint-wise) at
                the start, the object is put back first; ``None`` never does.
            start: Start time on the simulated clock [s].
            velocities: Joint velocities at the points (N, J), optional.
            accelerations: Joint accelerations at the points (N, J), optional.

        Returns:
            How late it arrived [s] (0 when on time).

        Raises:
            ValueError: On a malformed trajectory.
        """
        t = np.asarray(times, dtype=np.float64)
        p = np.asarray(positions, dtype=np.float64)
        if p.ndim != 2 or p.shape != (len(t), self.arm.n_joints) or len(t) == 0:
            raise ValueError(f"trajectory of shape {p.shape} for {len(t)} times")
        derivs = [p]
        for extra in (velocities, accelerations):
            if extra is None or len(extra) == 0:
                break
            e = np.asarray(extra, dtype=np.float64)
            if e.shape != p.shape:
                raise ValueError(f"velocities/accelerations of shape {e.shape} for {p.shape}")
            derivs.append(e)
        if not (np.all(np.isfinite(t)) and all(np.all(np.isfinite(d)) for d in derivs)):
            raise ValueError("trajectory holds NaN or inf")
        if t[0] <= 0 or np.any(np.diff(t) <= 0):
            raise ValueError("trajectory times must increase from above 0")
        now = self.time
        begin = now if start is None else float(start)
        self._pending = (begin, begin + t, np.stack(derivs, axis=1), reset_at_home_tol)
        self._activate()
        return max(0.0, now - begin)

    def _activate(self) -> None:
        """Start the pending trajectory when its time has come (at the current step)."""
        if self._pending is None or self._pending[0] > self.time + _TIME_EPS:
            return
        begin, knots, points, reset_tol = self._pending
        self._pending = None
        now = self.time
        ref = self.reference_state()
        if reset_tol is not None and np.max(np.abs(ref[0] - self.home)) <= reset_tol:
            self.reset_object()
        ahead = knots > now + _TIME_EPS
        if not np.any(ahead):
            self._hold = points[-1, 0].copy()
            self._poly = None
            return
        x = np.concatenate([[max(begin, now)], knots[ahead]])
        # Points: (derivative order, joint); the start carries as many of the reference.
        yi = [ref[: points.shape[1]], *points[ahead]]
        self._poly = BPoly.from_derivatives(x, yi)
        self._end = float(x[-1])
        self._hold = points[-1, 0].copy()

    def reference_state(self) -> np.ndarray:
        """The joint reference now: position, velocity, acceleration, shape (3, J)."""
        t = self.time
        if self._poly is None or t >= self._end:
            self._poly = None
            return np.stack([self._hold, np.zeros_like(self._hold), np.zeros_like(self._hold)])
        return np.stack([self._poly(t, nu=d) for d in (0, 1, 2)])

    def reference(self) -> np.ndarray:
        """The joint reference position now."""
        if self._poly is None or self.time >= self._end:
            return self._hold.copy()
        out: np.ndarray = self._poly(self.time)
        return out

    def step(self, n: int = 1) -> None:
        """Advance the physics by ``n`` steps.

        Args:
            n: Number of steps.
        """
        for _ in range(n):
            self._activate()
            self.data.ctrl[:2] = self.arm.fk(self.reference())
            mujoco.mj_step(self.model, self.data)
            self._step += 1
