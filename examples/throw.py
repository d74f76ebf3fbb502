"""Your own task without MuJoCo: throw a ball so that it lands on a target, in numpy.

A 2-D θ (release angle, release speed), a 1-D outcome (where the ball lands along the
ground) and hidden physics per instance (air drag and a head or tail wind). The whole task
is the five members of :class:`icpi.envs.spec.SkillTask` plus three optional attributes:

- ``success_threshold``: the cost under which a throw counts as a success (here 10 cm;
  default 5 mm, made for the shipped tabletop tasks);
- ``e_unit``: how finely ICPI's prompt writes the error e (here 10 cm per integer step,
  the scale of a throw; default 1 cm);
- ``outcome_description``: what the outcome is, for a dataset's ``meta.json``.

Run it like any task: ``icpi collect --task examples/throw.py:ThrowTask --out data/throw``,
then ``icpi run``, ``icpi bench``, ``icpi report``, ``api.improve`` or ``ICPISampler``
(``examples/one_spec.py`` runs all of them with one method spec).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from icpi.envs.spec import Instance, Rollout, ThetaSpec

DT = 0.005  # integration step [s]
G = 9.81  # [m/s²]
RELEASE_HEIGHT = 1.8  # [m]


class ThrowTask:
    """Throw: land a ball on a target 4–12 m away, against unknown drag and wind."""

    task_id = "throw"
    theta_spec = ThetaSpec(
        names=("angle", "speed"), units=("rad", "m/s"), low=(0.1, 4.0), high=(1.2, 14.0)
    )
    goal_low = (4.0,)
    goal_high = (12.0,)
    physics_ranges = {
        "drag": (0.01, 0.05),  # quadratic drag over mass [1/m]
        "wind": (-2.0, 2.0),  # horizontal wind speed [m/s]
    }
    success_threshold = 0.1  # [m]
    e_unit = 0.1  # [m] per integer step of e in ICPI's prompt
    outcome_description = "where the ball first touches the ground, along the throw"
    outcome_unit = "metres"

    def sample_instance(self, rng: np.random.Generator) -> Instance:
        """A target in the range and hidden physics, uniform in their ranges."""
        physics = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in self.physics_ranges.items()}
        goal = rng.uniform(self.goal_low, self.goal_high)
        return Instance(goal=tuple(map(float, goal)), physics=tuple(sorted(physics.items())))

    def outcome(self, trajectory: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Where the path reaches the ground (its last point's distance)."""
        return np.asarray(trajectory[-1, :1], dtype=np.float64).copy()

    def rollout(self, instance: Instance, theta: Any) -> Rollout:
        """Throw once: integrate the flight with drag and wind until the ball lands."""
        theta, clipped = self.theta_spec.validate(theta)
        angle, speed = (float(v) for v in theta)
        p = instance.physics_dict
        pos = np.array([0.0, RELEASE_HEIGHT])
        vel = np.array([speed * math.cos(angle), speed * math.sin(angle)])
        path = [pos.copy()]
        while pos[1] > 0.0:
            air = vel - np.array([p["wind"], 0.0])
            acc = -p["drag"] * np.linalg.norm(air) * air - np.array([0.0, G])
            vel = vel + DT * acc
            pos = pos + DT * vel
            path.append(pos.copy())
        a, b = path[-2], path[-1]  # land exactly on the ground between the last two steps
        path[-1] = a + (b - a) * a[1] / (a[1] - b[1])
        trajectory = np.asarray(path)
        outcome = self.outcome(trajectory, instance.goal_array)
        e = outcome - instance.goal_array
        return Rollout(theta, clipped, outcome, e, float(np.linalg.norm(e)), trajectory)
