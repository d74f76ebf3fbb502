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

## Serial arms (UR5e, Panda)
With a :class:`~icpi.robot.kinematics.SerialArm` the arm itself stands in the scene: its
model (``robot/arms/<name>.xml``, placed at ``base_pose``) replaces the task's free
striker, and its own striker sphere hits the ball. Every physics step (2 ms: the 500 Hz
of UR's and Franka's controllers) the drive's command goes to the arm's position
actuators with velocity feed-forward (``ctrl = q + kv/kp · q̇``, so the actuator is a PD
on both errors, as joint_trajectory_controller's PID with feed-forward velocity); the
joint state is the joints' own position and velocity. Measured on the UR5e: joint
tracking within 1 mrad along a trial (40 mrad without the feed-forward).

## Camera
With a :class:`~icpi.robot.camera.CameraSetup` the scene gets that camera and the
ArUco marker of a :class:`~icpi.robot.camera.MarkerSetup` on the table, and
:meth:`Twin.render` draws the current state (headless EGL or OSMesa).

## Controller models
How a new trajectory takes over (``controller_model``, :data:`CONTROLLER_MODELS`):

- ``stamp``: it starts at its header stamp, from the reference (desired state) at that
  moment; the running one is followed until then. One that arrives after its stamp
  starts on arrival, from the reference, every knot shifted by the delay: it is never
  skipped into.
- ``jtc``: the stock ros2_controllers ``joint_trajectory_controller`` (Jazzy, Kilted):
  it replaces the running one at the first control cycle after arrival, from the
  *measured* state (position and velocity; acceleration zero), with its first segment
  ending at the first point at ``stamp + time_from_start`` (stamp 0: the arrival);
  the segments between points follow the points' own times, so a point already in the
  past is sampled into, as that controller does.

## Drive limits
Whatever arrives, the effector never moves faster than the arm's ``velocity_limits``
and ``acceleration_limits``: the drive follows the controller's reference exactly while
the reference keeps within them and, the moment it would not (a jump), brakes towards
it within them instead, counting the step in :attr:`Twin.limited` (the node logs it).
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np
from scipy.interpolate import BPoly

from icpi.envs import make_task
from icpi.envs.base import Instance
from icpi.robot.camera import CameraRenderer, CameraSetup, MarkerSetup, add_camera, add_marker
from icpi.robot.skill import CONTROLLER_MODELS, SKILLS, ArmModel, Kinematics

# Name prefix of the serial arm's elements in the twin's scene.
ARM_PREFIX = "arm/"

# Tolerance of the time grid [s].
_TIME_EPS = 1e-9


class Twin:
    """A persistent MuJoCo scene driven by joint trajectories."""

    def __init__(
        self,
        skill: str,
        arm: Kinematics,
        home: Sequence[float],
        physics: Sequence[float],
        controller_model: str = "stamp",
        velocity_limits: Sequence[float] | None = None,
        acceleration_limits: Sequence[float] | None = None,
        camera: CameraSetup | None = None,
        marker: MarkerSetup | None = None,
    ):
        """Build the scene with the effector at home and the object on its spot.

        Args:
            skill: Twin task id (a key of :data:`SKILLS`).
            arm: Arm model (maps joints to the effector's xy).
            home: Home joint positions.
            physics: Hidden physical parameters, in sorted name order.
            controller_model: ``stamp`` or ``jtc`` (see the module docstring).
            velocity_limits: The drive's joint speed limits (``None``: unlimited).
            acceleration_limits: The drive's joint acceleration limits (``None``:
                unlimited).
            camera: A camera to render (``None``: none).
            marker: The ArUco marker on the table (with a camera; ``None``: none).

        Raises:
            ValueError: On an unknown skill or controller model, a physics value outside
                its range, or non-positive limits.
        """
        if skill not in SKILLS:
            raise ValueError(f"the twin runs {list(SKILLS)}, not {skill!r}")
        if controller_model not in CONTROLLER_MODELS:
            raise ValueError(
                f"controller_model must be one of {CONTROLLER_MODELS}, got {controller_model!r}"
            )
        self.controller_model = controller_model
        n_j = arm.n_joints
        self._vmax = (
            np.full(n_j, np.inf)
            if velocity_limits is None
            else np.asarray(velocity_limits, dtype=np.float64)
        )
        self._amax = (
            np.full(n_j, np.inf)
            if acceleration_limits is None
            else np.asarray(acceleration_limits, dtype=np.float64)
        )
        if self._vmax.shape != (n_j,) or self._amax.shape != (n_j,):
            raise ValueError(f"the drive limits need {n_j} values each")
        if np.any(self._vmax <= 0) or np.any(self._amax <= 0):
            raise ValueError("the drive limits must be positive")
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
        self.serial = not isinstance(arm, ArmModel)
        spec = self.task.spec(self.instance)
        if self.serial:
            _stand_arm(spec, arm)
        if camera is not None:
            add_camera(spec, camera)
            if marker is not None:
                add_marker(spec, marker)
        self.camera = camera
        self._renderer: CameraRenderer | None = None
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.dt = float(self.model.opt.timestep)
        m = self.model
        joints = (
            [ARM_PREFIX + n for n in arm.joint_names]  # type: ignore[attr-defined]
            if self.serial
            else list(self.task.effector_joints)
        )
        self._qadr = np.array([m.joint(n).qposadr[0] for n in joints])
        self._vadr = np.array([m.joint(n).dofadr[0] for n in joints])
        # The actuator of each drive axis and its velocity feed-forward kv/kp.
        ids = [m.joint(n).id for n in joints]
        self._act = np.array([int(np.flatnonzero(m.actuator_trnid[:, 0] == j)[0]) for j in ids])
        self._feedforward = (
            -m.actuator_biasprm[self._act, 2] / m.actuator_gainprm[self._act, 0]
            if self.serial
            else np.zeros(len(ids))
        )
        # Torque feed-forward of the serial arm: M(q) times the drive's acceleration, and
        # its joints' damping times the drive's speed.
        self._qacc = np.zeros(m.nv)
        self._torque = np.zeros(m.nv)
        self._damping = m.dof_damping[self._vadr].copy()
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
        self.data.qpos[self._qadr] = self.home if self.serial else arm.fk(self.home)
        mujoco.mj_forward(m, self.data)
        self._hold = self.home.copy()  # joint reference while no trajectory runs
        # The drive's command (position, velocity): the reference, within the limits.
        self._drive_q = self.home.copy()
        self._drive_v = np.zeros(n_j)
        self.limited = 0
        """Physics steps on which the drive had to hold the reference to its limits."""
        self.takeover_step = np.zeros((3, n_j))
        """``jtc``: how the last take-over changed the joint reference (position, velocity,
        acceleration)."""

    # ------------------------------------------------------------------ state
    @property
    def time(self) -> float:
        """Simulated time [s], from the step count (exact on the step grid)."""
        return self._step * self.dt

    def effector_xy(self) -> np.ndarray:
        """The effector's actual position [m]."""
        if self.serial:
            return self.arm.fk(self.data.qpos[self._qadr])
        out: np.ndarray = self.data.qpos[self._qadr].copy()
        return out

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint positions and velocities: a serial arm's own, else read from the effector.

        Returns:
            ``(positions, velocities)``.
        """
        if self.serial:
            return self.data.qpos[self._qadr].copy(), self.data.qvel[self._vadr].copy()
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
        """Take a joint trajectory over as the configured controller model does.

        Segments are quintic when velocities and accelerations are given, cubic with
        velocities only, linear with positions only. ``stamp``: the trajectory starts at
        ``start`` (its header stamp; ``None``: now) from the reference there, or on
        arrival, shifted, when that is past. ``jtc``: it replaces the running one at the
        next physics step, from the measured state (module docstring).

        Args:
            times: Time of each point from ``start`` [s], increasing, > 0.
            positions: Joint positions (N, J).
            reset_at_home_tol: When the reference is within this of home (joint-wise) at
                the start, the object is put back first; ``None`` never does.
            start: Start time on the simulated clock [s] (the header stamp; ``None`` or
                0: on arrival).
            velocities: Joint velocities at the points (N, J), optional.
            accelerations: Joint accelerations at the points (N, J), optional.

        Returns:
            How late it arrived after its stamp [s] (``stamp``; 0 when on time). Under
            ``jtc`` 0: arriving after its first point is sampling into it, and what
            counts is how far that moves the reference (:attr:`takeover_step`).

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
        begin = now if not start else float(start)
        late = max(0.0, now - begin)
        if self.controller_model == "stamp":
            # Late: it starts now, every knot shifted by the delay (never skipped into).
            begin = max(begin, now)
            self._pending = (begin, begin + t, np.stack(derivs, axis=1), reset_at_home_tol)
            self._activate()
        else:
            # jtc: taken over now (the control cycle of the coming step), from the measured
            # state, or sampled into when its first point is past; its points keep their
            # own times from the stamp.
            before = self.reference_state()
            self._pending = (-np.inf, begin + t, np.stack(derivs, axis=1), reset_at_home_tol)
            self._activate()
            self.takeover_step = self.reference_state() - before
            late = 0.0
        return late

    def _activate(self) -> None:
        """Start the pending trajectory when its time has come (at the current step)."""
        if self._pending is None or self._pending[0] > self.time + _TIME_EPS:
            return
        _, knots, points, reset_tol = self._pending
        self._pending = None
        now = self.time
        if self.controller_model == "stamp":
            ref = self.reference_state()
        else:  # measured position and velocity, acceleration zero
            q, qdot = self.joint_state()
            ref = np.stack([q, qdot, np.zeros_like(q)])
        if reset_tol is not None and np.max(np.abs(ref[0] - self.home)) <= reset_tol:
            self.reset_object()
        self._hold = points[-1, 0].copy()
        ahead = knots > now + _TIME_EPS
        if not np.any(ahead):  # over already: hold its last point
            self._poly = None
            return
        first = int(np.argmax(ahead))
        if first == 0:  # from the start state to the first point
            x = np.concatenate([[now], knots])
            yi = [ref[: points.shape[1]], *points]  # (derivative order, joint) per point
        else:  # jtc, first point in the past: its own segments (a jump the drive limits)
            x, yi = knots[first - 1 :], list(points[first - 1 :])
        self._poly = BPoly.from_derivatives(x, yi)
        self._end = float(x[-1])

    def reference_state(self) -> np.ndarray:
        """The joint reference now: position, velocity, acceleration, shape (3, J)."""
        t = self.time
        if self._poly is None or t >= self._end:
            self._poly = None
            return np.stack([self._hold, np.zeros_like(self._hold), np.zeros_like(self._hold)])
        return np.stack([self._poly(t, nu=d) for d in (0, 1, 2)])

    def reference(self, at: float | None = None) -> np.ndarray:
        """The joint reference position now (or at simulated time ``at``, not before now)."""
        t = self.time if at is None else at
        if self._poly is None or t >= self._end:
            return self._hold.copy()
        out: np.ndarray = self._poly(t)
        return out

    def _drive(self, target: np.ndarray) -> np.ndarray:
        """The drive's next command towards the reference ``target``, within its limits."""
        dt = self.dt
        v = (target - self._drive_q) / dt
        tol = 1.0 + 1e-6
        within = np.all(np.abs(v) <= self._vmax * tol) and np.all(
            np.abs(v - self._drive_v) <= self._amax * dt * tol
        )
        if not within:
            self.limited += 1
            # Brake towards the target: never closer faster than the arm can stop there.
            err = target - self._drive_q
            reach = np.sqrt(2.0 * self._amax * np.abs(err))
            v = np.clip(v, -reach, reach)
            v = np.clip(v, self._drive_v - self._amax * dt, self._drive_v + self._amax * dt)
            v = np.clip(v, -self._vmax, self._vmax)
        self._drive_v = v
        self._drive_q = self._drive_q + v * dt
        return self._drive_q

    def step(self, n: int = 1) -> None:
        """Advance the physics by ``n`` steps.

        Args:
            n: Number of steps.
        """
        for _ in range(n):
            self._activate()
            v_before = self._drive_v
            q = self._drive(self.reference())
            if self.serial:  # position control with velocity and inertia feed-forward
                self.data.ctrl[self._act] = q + self._feedforward * self._drive_v
                self._qacc[self._vadr] = (self._drive_v - v_before) / self.dt
                mujoco.mj_mulM(self.model, self.data, self._torque, self._qacc)
                d = self.data
                self.data.qfrc_applied[self._vadr] = (
                    self._torque[self._vadr]
                    + (d.qfrc_bias - d.qfrc_gravcomp)[self._vadr]
                    + self._damping * self._drive_v
                )
            else:
                self.data.ctrl[self._act] = self.arm.fk(q)
            mujoco.mj_step(self.model, self.data)
            self._step += 1

    def render(self) -> np.ndarray:
        """The camera's RGB image of the current state (call from one thread only).

        Returns:
            (height, width, 3) uint8.

        Raises:
            ValueError: If the twin has no camera.
        """
        if self.camera is None:
            raise ValueError("the twin has no camera")
        if self._renderer is None:  # its GL context belongs to the calling thread
            self._renderer = CameraRenderer(self.model, self.camera)
        return self._renderer.render(self.data)

    def close(self) -> None:
        """Free the renderer's GL context (from the thread that rendered)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _stand_arm(spec: mujoco.MjSpec, arm: Kinematics) -> None:
    """Put the serial arm in the scene in place of the task's free striker.

    Args:
        spec: The task's scene (changed in place).
        arm: The serial arm (its model and base pose).
    """
    from icpi.robot.kinematics import arm_spec

    spec.delete(spec.body("striker"))
    for actuator in list(spec.actuators):
        spec.delete(actuator)
    source = arm_spec(arm.source, arm.base_pose)  # type: ignore[attr-defined]
    spec.attach(source, prefix=ARM_PREFIX, frame=spec.worldbody.add_frame())
