"""Your own task, in one file: putt a golf ball so that it stops on a target.

This is what icpi needs of a task (the protocol :class:`icpi.envs.spec.SkillTask`):

- ``task_id`` and ``theta_spec``: θ's names, units and bounds;
- ``sample_instance(rng)``: a goal and the hidden physics of one instance;
- ``rollout(instance, θ)``: run θ once, return a :class:`~icpi.envs.spec.Rollout`
  (θ as executed, the outcome, e = outcome − goal, the cost, the tracked point's path);
- ``outcome(trajectory, goal)``: where a path ended up for a goal (hindsight relabelling
  uses it to pretend another goal was asked for).

Optionally ``goal_low`` / ``goal_high`` (the goal region: relabelled examples are kept
inside it), ``physics_ranges`` (recorded with a dataset), ``success_threshold`` (the cost
of a success, default 5 mm), ``e_unit`` (one integer step of e in ICPI's prompt, default
1 cm) and ``outcome_description`` (for the dataset's ``meta.json``). Nothing else: no
Gymnasium, no registration. The physics here is MuJoCo's, in a scene this file builds itself;
a simulator of your own, or a real arm behind a function, works the same way.

Use it from the command line as ``--task examples/putt.py:PuttTask`` (every verb), or from
Python (see ``examples/own_task.py``).
"""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np

from icpi.envs.spec import Instance, Rollout, ThetaSpec

SCENE = """
<mujoco model="putt">
  <option timestep="0.002"/>
  <worldbody>
    <geom name="green" type="plane" size="10 10 0.1" friction="0.6 0.005 0.0015" condim="6"/>
    <body name="ball" pos="0 0 0.0213">
      <freejoint/>
      <geom name="ball" type="sphere" size="0.0213" mass="0.046" condim="6"
            friction="0.6 0.005 0.0015"/>
    </body>
  </worldbody>
</mujoco>
"""
BALL_RADIUS = 0.0213  # [m]
HORIZON = 6.0  # [s]
RECORD_EVERY = 10  # physics steps between recorded path points


class PuttTask:
    """Putt: strike a golf ball on a sloped green so that it stops on the target.

    θ = (aim angle [rad] from +x, launch speed [m/s]). Hidden per instance: the green's
    rolling resistance and its slope (a small horizontal pull of gravity). The outcome is
    the ball's final position; the goal is drawn in a 2 m × 1 m region ahead.
    """

    task_id = "putt"
    theta_spec = ThetaSpec(
        names=("aim", "speed"), units=("rad", "m/s"), low=(-0.5, 0.5), high=(0.5, 2.0)
    )
    outcome_description = "where the ball stops on the green (xy)"
    goal_low = (1.0, -0.5)
    goal_high = (3.0, 0.5)
    physics_ranges = {
        "rolling": (0.0015, 0.0025),  # rolling-friction length [m]
        "slope_x": (-0.06, 0.06),  # horizontal gravity [m/s²]
        "slope_y": (-0.06, 0.06),
    }

    def __init__(self) -> None:
        """Parse the scene once; instances are compiled (and cached) on first use."""
        self._spec = mujoco.MjSpec.from_string(SCENE)
        self._models: dict[Instance, mujoco.MjModel] = {}

    def sample_instance(self, rng: np.random.Generator) -> Instance:
        """A goal in the region and hidden physics, uniform in their ranges."""
        physics = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in self.physics_ranges.items()}
        goal = rng.uniform(self.goal_low, self.goal_high)
        return Instance(goal=tuple(map(float, goal)), physics=tuple(sorted(physics.items())))

    def _model(self, instance: Instance) -> mujoco.MjModel:
        model = self._models.get(instance)
        if model is None:
            spec = self._spec.copy()
            p = instance.physics_dict
            spec.option.gravity = [p["slope_x"], p["slope_y"], -9.81]
            for name in ("green", "ball"):
                spec.geom(name).friction[2] = p["rolling"]
            model = self._models[instance] = spec.compile()
        return model

    def outcome(self, trajectory: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Where the ball stopped (the last point of its path, xy)."""
        return np.asarray(trajectory[-1, :2], dtype=np.float64).copy()

    def rollout(self, instance: Instance, theta: Any) -> Rollout:
        """Putt once: launch the ball rolling at θ's speed and aim, simulate 6 s."""
        theta, clipped = self.theta_spec.validate(theta)
        aim, speed = (float(v) for v in theta)
        model = self._model(instance)
        data = mujoco.MjData(model)
        # rolling without slipping: linear velocity along the aim, spin about the normal
        vx, vy = speed * math.cos(aim), speed * math.sin(aim)
        data.qvel[:6] = [vx, vy, 0.0, -vy / BALL_RADIUS, vx / BALL_RADIUS, 0.0]
        path = [data.qpos[:3].copy()]
        for _ in range(round(HORIZON / model.opt.timestep) // RECORD_EVERY):
            mujoco.mj_step(model, data, nstep=RECORD_EVERY)
            path.append(data.qpos[:3].copy())
        trajectory = np.asarray(path)
        goal = instance.goal_array
        outcome = self.outcome(trajectory, goal)
        e = outcome - goal
        return Rollout(theta, clipped, outcome, e, float(np.linalg.norm(e)), trajectory)
