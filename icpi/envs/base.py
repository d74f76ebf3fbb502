"""Shared machinery of the parametric-skill tasks.

A task is an MJCF scene plus a thin class that says (i) how an instance's hidden physics
and goal change the model (through :class:`mujoco.MjSpec`), (ii) how θ becomes an
open-loop position reference for the actuators, and (iii) how the tracked point's path
becomes an outcome. Everything else lives here: θ validation and clipping, model caching,
and rollouts through :func:`mujoco.rollout.rollout` (serial or on several threads, with
bit-identical results either way).

A task object is safe to share between threads (an Optuna study with ``n_jobs=2``, a
thread pool of runs): compiled models are shared under a lock, and each thread simulates in
its own ``MjData``.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout
from numpy.typing import ArrayLike

from icpi.envs.spec import (
    SUCCESS_TOLERANCE,
    Instance,
    Rollout,
    Stroke,
    ThetaSpec,
    min_jerk,
    straight_stroke,
)

ASSETS = Path(__file__).resolve().parent / "assets"
# Compiled models kept per task (one per distinct instance).
MODEL_CACHE_SIZE = 64
# MuJoCo's persistent rollout pool is one per process: one threaded batch uses it at a time.
_POOL_LOCK = threading.Lock()


class Task(ABC):
    """Base class of a MuJoCo parametric-skill task.

    Subclasses set the class attributes and implement :meth:`_apply_instance` and
    :meth:`stroke`; :meth:`outcome` defaults to the tracked point's final xy position.
    """

    task_id: ClassVar[str]
    """Short id, e.g. ``slide-gc``."""
    asset: ClassVar[str]
    """MJCF file name in ``assets/``."""
    theta_spec: ClassVar[ThetaSpec]
    """Skill parameters."""
    goal_conditioned: ClassVar[bool]
    """Whether the goal is sampled per instance."""
    fixed_goal: ClassVar[tuple[float, ...]]
    """Goal of the fixed-goal variant [m]."""
    goal_low: ClassVar[tuple[float, ...]]
    """Lower corner of the goal region of the goal-conditioned variant [m]."""
    goal_high: ClassVar[tuple[float, ...]]
    """Upper corner of the goal region of the goal-conditioned variant [m]."""
    physics_ranges: ClassVar[dict[str, tuple[float, float]]]
    """Range of each hidden physical parameter, sampled uniformly per instance."""
    horizon: ClassVar[float]
    """Rollout duration [s]."""
    tracked_sensor: ClassVar[str] = "tracked"
    """Name of the framepos sensor of the point whose outcome is scored."""
    effector_joints: ClassVar[tuple[str, str]]
    """The effector's x and y slide joints, in actuator order (the stroke drives them)."""
    deterministic: ClassVar[bool] = True
    """The same θ on the same instance gives the same rollout, bit for bit (a method need
    never roll a θ out twice; a task without this attribute, like the real arm, is noisy)."""

    def __init__(self) -> None:
        self._base_spec = mujoco.MjSpec.from_file(str(ASSETS / self.asset))
        # Instance -> compiled model, least recent first (shared by threads, under the lock).
        self._models: OrderedDict[Instance, mujoco.MjModel] = OrderedDict()
        self._models_lock = threading.Lock()
        # Per thread: its own MjData (scratch data per model, rollout data), never shared.
        self._local = threading.local()
        base = self._base_spec.copy().compile()
        self.timestep = float(base.opt.timestep)
        self.nstep = round(self.horizon / self.timestep)

    # ------------------------------------------------------------------ instances
    @property
    def goal_dim(self) -> int:
        """Dimension of the goal and of e."""
        return len(self.fixed_goal)

    def make_instance(
        self,
        goal: Sequence[float] | None = None,
        physics: Mapping[str, float] | None = None,
    ) -> Instance:
        """Build an instance from explicit values.

        Args:
            goal: Goal point; defaults to the fixed goal. A fixed-goal task accepts only
                its fixed goal.
            physics: Physical parameters; missing ones take the middle of their range.

        Returns:
            The instance.

        Raises:
            ValueError: On an unknown parameter, a value outside its range, or a goal of
                the wrong size, non-finite, or outside the goal region.
        """
        goal_arr = np.asarray(self.fixed_goal if goal is None else goal, dtype=np.float64)
        if goal_arr.shape != (self.goal_dim,) or not np.all(np.isfinite(goal_arr)):
            raise ValueError(f"goal must be {self.goal_dim} finite numbers, got {goal!r}")
        if self.goal_conditioned:
            if np.any(goal_arr < np.asarray(self.goal_low) - 1e-12) or np.any(
                goal_arr > np.asarray(self.goal_high) + 1e-12
            ):
                raise ValueError(
                    f"goal {goal_arr.tolist()} is outside the goal region"
                    f" {list(self.goal_low)}..{list(self.goal_high)}"
                )
        elif not np.allclose(goal_arr, self.fixed_goal, rtol=0, atol=1e-12):
            raise ValueError(
                f"{self.task_id} has the fixed goal {list(self.fixed_goal)}; use its -gc variant"
                " for other goals"
            )
        values = {k: 0.5 * (lo + hi) for k, (lo, hi) in self.physics_ranges.items()}
        for key, value in (physics or {}).items():
            if key not in self.physics_ranges:
                raise ValueError(
                    f"unknown physical parameter {key!r}; {self.task_id} has"
                    f" {', '.join(self.physics_ranges)}"
                )
            lo, hi = self.physics_ranges[key]
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{key}={value} is outside its range [{lo}, {hi}]")
            values[key] = float(value)
        return Instance(
            goal=tuple(float(g) for g in goal_arr),
            physics=tuple(sorted((k, float(v)) for k, v in values.items())),
        )

    def sample_instance(
        self,
        rng: np.random.Generator,
        goal: Sequence[float] | None = None,
        physics: Mapping[str, float] | None = None,
    ) -> Instance:
        """Draw an instance: physics uniform in their ranges, goal uniform in its region.

        Args:
            rng: Random generator (the only source of randomness).
            goal: Pin the goal instead of sampling it.
            physics: Pin some physical parameters instead of sampling them.

        Returns:
            The instance.
        """
        drawn = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in self.physics_ranges.items()}
        drawn.update(physics or {})
        if goal is None and self.goal_conditioned:
            goal = rng.uniform(self.goal_low, self.goal_high).tolist()
        return self.make_instance(goal=goal, physics=drawn)

    # ------------------------------------------------------------------ models
    def model(self, instance: Instance) -> mujoco.MjModel:
        """Compile (or fetch from the cache) the model of an instance.

        Args:
            instance: The instance.

        Returns:
            The compiled model.
        """
        with self._models_lock:
            cached = self._models.get(instance)
            if cached is not None:
                self._models.move_to_end(instance)
                return cached
            model: mujoco.MjModel = self.spec(instance).compile()
            self._models[instance] = model
            if len(self._models) > MODEL_CACHE_SIZE:
                self._models.popitem(last=False)
            return model

    def spec(self, instance: Instance) -> mujoco.MjSpec:
        """The instance's scene, not compiled (a fresh copy to extend, e.g. with a camera).

        Args:
            instance: The instance.

        Returns:
            The spec with the instance's goal and physics applied.
        """
        spec = self._base_spec.copy()
        spec.site("goal").pos[: self.goal_dim] = instance.goal
        self._apply_instance(spec, instance)
        return spec

    def _scratch(self, model: mujoco.MjModel) -> mujoco.MjData:
        """This thread's scratch data of a model (for initial states)."""
        scratch: OrderedDict[int, tuple[mujoco.MjModel, mujoco.MjData]] | None = getattr(
            self._local, "scratch", None
        )
        if scratch is None:
            scratch = self._local.scratch = OrderedDict()
        held = scratch.get(id(model))
        if held is not None and held[0] is model:
            scratch.move_to_end(id(model))
            return held[1]
        data = mujoco.MjData(model)
        scratch[id(model)] = (model, data)  # the model is held: its id is not reused
        if len(scratch) > MODEL_CACHE_SIZE:
            scratch.popitem(last=False)
        return data

    @abstractmethod
    def _apply_instance(self, spec: mujoco.MjSpec, instance: Instance) -> None:
        """Write the instance's physical parameters into the spec."""

    @abstractmethod
    def stroke(self, theta: np.ndarray) -> Stroke:
        """The effector stroke of θ (shared by the MuJoCo scene and the real arm).

        Args:
            theta: θ in physical units (already validated).

        Returns:
            The stroke.
        """

    def _plan(self, theta: np.ndarray, model: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray]:
        """Turn θ into ``(qpos0, ctrl)``: the initial joint positions and a control per step.

        Controls are computed from the step index alone (not accumulated time), so that
        the same θ gives bit-identical controls everywhere.
        """
        start, ctrl = self.stroke(theta).reference(self.nstep, self.timestep)
        qpos0 = model.qpos0.copy()
        set_joint_positions(model, qpos0, dict(zip(self.effector_joints, start, strict=True)))
        return qpos0, ctrl

    def outcome(self, trajectory: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Outcome of a path for a goal; the default is the path's final xy position.

        Args:
            trajectory: Path of the tracked point, one row per physics step [m].
            goal: The goal [m].

        Returns:
            The outcome, in the goal's frame [m].
        """
        return trajectory[-1, : self.goal_dim].copy()

    # ------------------------------------------------------------------ rollouts
    def initial_state(
        self, model: mujoco.MjModel, data: mujoco.MjData, qpos0: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Full physics state at rest with the given joint positions.

        Args:
            model: The instance's model.
            data: Scratch data of that model (overwritten).
            qpos0: Joint positions.

        Returns:
            The state vector (``mjSTATE_FULLPHYSICS``) and the tracked point's position.
        """
        mujoco.mj_resetData(model, data)
        data.qpos[:] = qpos0
        mujoco.mj_forward(model, data)
        state = np.empty(mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS))
        mujoco.mj_getState(model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        adr = self._sensor_adr(model)
        return state, data.sensordata[adr : adr + 3].copy()

    def rollout(self, instance: Instance, theta: ArrayLike, record_states: bool = False) -> Rollout:
        """Run θ once on an instance.

        Args:
            instance: The instance.
            theta: Skill parameters; clipped to the bounds (and flagged) when outside.
            record_states: Keep the full physics state of every step (for rendering).

        Returns:
            The rollout.

        Raises:
            ValueError: If θ has the wrong shape or is not finite.
        """
        return self.rollout_batch([instance], [theta], nthread=1, record_states=record_states)[0]

    def rollout_batch(
        self,
        instances: Sequence[Instance],
        thetas: Sequence[Any] | np.ndarray,
        nthread: int | None = None,
        record_states: bool = False,
    ) -> list[Rollout]:
        """Run many (instance, θ) pairs, on several threads when asked.

        Results are bit-identical to running each pair alone with :meth:`rollout`.

        Args:
            instances: One instance per θ (or a single instance for all of them).
            thetas: Skill parameters, one row per rollout.
            nthread: Threads to use; ``None`` uses every core, 1 runs serially.
            record_states: Keep the full physics state of every step.

        Returns:
            One rollout per θ, in order.

        Raises:
            ValueError: If any θ is malformed or the lengths differ.
        """
        checked = [self.theta_spec.validate(t) for t in thetas]
        if len(instances) == 1 and len(checked) > 1:
            instances = list(instances) * len(checked)
        if len(instances) != len(checked):
            raise ValueError(f"{len(instances)} instances for {len(checked)} θ")
        if not checked:
            return []
        models = [self.model(inst) for inst in instances]
        plans = [self._plan(theta, m) for (theta, _), m in zip(checked, models, strict=True)]
        starts = [
            self.initial_state(m, self._scratch(m), q)
            for m, (q, _) in zip(models, plans, strict=True)
        ]
        init = np.stack([state for state, _ in starts])
        ctrl = np.stack([c for _, c in plans])
        nbatch = len(checked)
        nthread = max(1, min(nthread or os.cpu_count() or 1, nbatch))
        datas = self._thread_datas(models[0], nthread)
        state = np.empty((nbatch, self.nstep, init.shape[1]))
        sensordata = np.empty((nbatch, self.nstep, models[0].nsensordata))
        with _POOL_LOCK if nthread > 1 else contextlib.nullcontext():
            mj_rollout.rollout(
                models,
                datas if nthread > 1 else datas[0],
                init,
                ctrl,
                # Zero solver warm start: each rollout is independent of what ran before.
                initial_warmstart=np.zeros((nbatch, models[0].nv)),
                state=state,
                sensordata=sensordata,
                persistent_pool=nthread > 1,
            )
        sensor_adr = self._sensor_adr(models[0])
        results = []
        for i, (theta, clipped) in enumerate(checked):
            path = np.vstack([starts[i][1], sensordata[i, :, sensor_adr : sensor_adr + 3]])
            goal = instances[i].goal_array
            outcome = self.outcome(path, goal)
            err = outcome - goal
            results.append(
                Rollout(
                    theta=theta,
                    clipped=clipped,
                    outcome=outcome,
                    e=err,
                    cost=float(np.linalg.norm(err)),
                    trajectory=path,
                    states=state[i].copy() if record_states else None,
                )
            )
        return results

    def _thread_datas(self, model: mujoco.MjModel, nthread: int) -> list[mujoco.MjData]:
        """This thread's rollout data, one per MuJoCo thread (never shared by threads)."""
        datas: list[mujoco.MjData] | None = getattr(self._local, "datas", None)
        if datas is None:
            datas = self._local.datas = []
        while len(datas) < nthread:
            datas.append(mujoco.MjData(model))
        return datas[:nthread]

    def _sensor_adr(self, model: mujoco.MjModel) -> int:
        return int(model.sensor(self.tracked_sensor).adr[0])


def set_joint_positions(
    model: mujoco.MjModel, qpos: np.ndarray, values: Mapping[str, float]
) -> None:
    """Write scalar joint positions by joint name into ``qpos`` (in place)."""
    for name, value in values.items():
        qpos[model.joint(name).qposadr[0]] = value


__all__ = [
    "ASSETS",
    "SUCCESS_TOLERANCE",
    "Instance",
    "Rollout",
    "Stroke",
    "Task",
    "ThetaSpec",
    "min_jerk",
    "set_joint_positions",
    "straight_stroke",
]
