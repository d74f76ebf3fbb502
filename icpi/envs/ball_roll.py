"""Ball roll: strike a ball so that it rolls to rest on a target (sim twin of the arm task)."""

from __future__ import annotations

import mujoco
import numpy as np

from icpi.envs.base import Instance, Stroke, Task, ThetaSpec
from icpi.envs.gym_env import TaskEnv

BALL_RADIUS = 0.03  # [m]
STRIKER_RADIUS = 0.02  # [m]


class BallRollGCTask(Task):
    """Ball roll, goal-conditioned: a striker hits a ball that rolls to a sampled target.

    ## Description
    A ball (radius 3 cm) rests at the origin of a floor. A spherical striker, tracked by
    stiff position actuators as an arm's end effector would be, winds up a backswing
    behind the ball and sweeps through it along a straight minimum-jerk stroke of twice
    the backswing, so that it meets the ball at peak speed (3.75·b/T). The ball rolls on
    and stops under rolling friction. An arm executes the same stroke in its base frame.

    ## Parameters θ
    | name | unit | low | high | meaning |
    |---|---|---|---|---|
    | strike_angle | rad | −0.6 | 0.6 | direction of the strike, from the +x axis |
    | backswing | m | 0.02 | 0.12 | wind-up distance behind the ball |
    | strike_duration | s | 0.12 | 0.5 | duration of the whole stroke |

    ## Observation
    ``[goal_x, goal_y, e_x, e_y]`` [m]; e is zero before the first step.

    ## Cost
    Distance [m] between the ball's position after 3 s and the goal; e = that position
    − goal (world xy). Success: cost < 5 mm.

    ## Starting state
    Ball at rest at the origin; goal uniform in x ∈ [0.4, 1.0] m, y ∈ [−0.25, 0.25] m.
    Hidden per instance: ball mass ∈ [0.03, 0.1] kg and rolling friction
    ∈ [0.002, 0.005] m.

    ## Episode end
    Terminated at success, truncated after 20 rollouts.

    ## Arguments
    ``gym.make("icpi/BallRollGC-v0", render_mode=None | "rgb_array")``.
    """

    task_id = "ball-roll-gc"
    asset = "ball_roll.xml"
    theta_spec = ThetaSpec(
        names=("strike_angle", "backswing", "strike_duration"),
        units=("rad", "m", "s"),
        low=(-0.6, 0.02, 0.12),
        high=(0.6, 0.12, 0.5),
    )
    goal_conditioned = True
    fixed_goal = (0.7, 0.0)
    goal_low = (0.4, -0.25)
    goal_high = (1.0, 0.25)
    physics_ranges = {"ball_mass": (0.03, 0.1), "rolling_friction": (0.002, 0.005)}
    horizon = 3.0
    tracked_sensor = "ball_pos"
    effector_joints = ("striker_x", "striker_y")

    def _apply_instance(self, spec: mujoco.MjSpec, instance: Instance) -> None:
        physics = instance.physics_dict
        ball = spec.geom("ball")
        ball.mass = physics["ball_mass"]
        ball.friction[2] = physics["rolling_friction"]

    def stroke(self, theta: np.ndarray) -> Stroke:
        """See :meth:`Task.stroke`."""
        angle, backswing, duration = (float(v) for v in theta)
        return Stroke(angle, BALL_RADIUS + STRIKER_RADIUS + backswing, 2.0 * backswing, duration)


class BallRollGCEnv(TaskEnv):
    """Gymnasium env ``icpi/BallRollGC-v0``; see :class:`BallRollGCTask`."""

    task_class = BallRollGCTask
