"""Slide: push a puck so that it comes to rest on a target."""

from __future__ import annotations

import mujoco
import numpy as np

from icpi.envs.base import Instance, Stroke, Task, ThetaSpec
from icpi.envs.gym_env import TaskEnv

PUCK_RADIUS = 0.04  # [m]
PUSHER_RADIUS = 0.015  # [m]
CONTACT_GAP = 0.005  # free run of the pusher before it touches the puck [m]


class SlideTask(Task):
    """Slide, fixed goal: a pusher shoves a puck across a table onto a fixed target.

    ## Description
    A puck (radius 4 cm) rests at the origin of a table. A spherical pusher, tracked by
    stiff position actuators like an arm's end effector, starts just behind the puck on
    the push line and moves along it with a minimum-jerk profile, then holds still. The
    puck slides on and stops under Coulomb friction.

    ## Parameters θ
    | name | unit | low | high | meaning |
    |---|---|---|---|---|
    | push_angle | rad | −0.6 | 0.6 | direction of the push, from the +x axis |
    | push_distance | m | 0.05 | 0.30 | pusher travel |
    | push_duration | s | 0.2 | 0.8 | time to cover that travel (peak speed 1.875·d/t) |

    ## Observation
    ``[goal_x, goal_y, e_x, e_y]`` [m]; e is zero before the first step.

    ## Cost
    Distance [m] between the puck's position after 2.5 s (at rest for all but the
    fastest pushes) and the goal; e = that position − goal (world xy). Success: cost < 5 mm.

    ## Starting state
    Puck at rest at the origin; goal (0.55, 0.15) m. Hidden per instance: puck–table
    sliding friction μ ∈ [0.15, 0.30] and puck mass ∈ [0.1, 0.3] kg.

    ## Episode end
    Terminated at success, truncated after 20 rollouts.

    ## Arguments
    ``gym.make("icpi/Slide-v0", render_mode=None | "rgb_array")``.
    """

    task_id = "slide"
    asset = "slide.xml"
    theta_spec = ThetaSpec(
        names=("push_angle", "push_distance", "push_duration"),
        units=("rad", "m", "s"),
        low=(-0.6, 0.05, 0.2),
        high=(0.6, 0.30, 0.8),
    )
    goal_conditioned = False
    fixed_goal = (0.55, 0.15)
    goal_low = (0.35, -0.25)
    goal_high = (0.75, 0.25)
    physics_ranges = {"friction": (0.15, 0.30), "puck_mass": (0.1, 0.3)}
    horizon = 2.5
    tracked_sensor = "puck_pos"
    effector_joints = ("pusher_x", "pusher_y")

    def _apply_instance(self, spec: mujoco.MjSpec, instance: Instance) -> None:
        physics = instance.physics_dict
        puck = spec.geom("puck")
        puck.friction[0] = physics["friction"]
        puck.mass = physics["puck_mass"]

    def stroke(self, theta: np.ndarray) -> Stroke:
        """See :meth:`Task.stroke`."""
        angle, distance, duration = (float(v) for v in theta)
        return Stroke(angle, PUCK_RADIUS + PUSHER_RADIUS + CONTACT_GAP, distance, duration)


class SlideGCTask(SlideTask):
    """Slide, goal-conditioned: as :class:`SlideTask`, with the goal drawn per instance.

    ## Starting state
    Goal uniform in x ∈ [0.35, 0.75] m, y ∈ [−0.25, 0.25] m; friction and mass as in
    :class:`SlideTask`. Everything else (θ, cost, episode end) is the same.

    ## Arguments
    ``gym.make("icpi/SlideGC-v0", render_mode=None | "rgb_array")``.
    """

    task_id = "slide-gc"
    goal_conditioned = True


class SlideEnv(TaskEnv):
    """Gymnasium env ``icpi/Slide-v0``; the task is documented in :class:`SlideTask`."""

    task_class = SlideTask


class SlideGCEnv(TaskEnv):
    """Gymnasium env ``icpi/SlideGC-v0``; see :class:`SlideGCTask`."""

    task_class = SlideGCTask
