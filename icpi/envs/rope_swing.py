"""Rope swing: swing a rope held by the end effector so that its tip passes a target."""

from __future__ import annotations

import mujoco
import numpy as np

from icpi.envs.base import Instance, Stroke, Task, ThetaSpec
from icpi.envs.gym_env import TaskEnv

ROPE_SEGMENTS = 10  # capsules in the chain (same for every instance)


class RopeSwingTask(Task):
    """Rope swing, fixed goal: whip a hanging rope so that its tip passes a target point.

    ## Description
    An end effector 1 m above the floor holds a rope that hangs at rest (a chain of
    10 capsules on damped ball joints: inextensible). The effector, tracked by stiff
    position actuators, makes one horizontal minimum-jerk stroke and stops; the rope
    swings forward and up. The outcome is the point of the tip's path (over 2 s, linearly
    interpolated between physics steps) closest to the target.

    ## Parameters θ
    | name | unit | low | high | meaning |
    |---|---|---|---|---|
    | swing_angle | rad | −0.6 | 0.6 | horizontal direction of the stroke, from +x |
    | stroke_length | m | 0.05 | 0.40 | effector travel |
    | stroke_duration | s | 0.15 | 0.8 | time to cover that travel |

    ## Observation
    ``[goal_x, goal_y, goal_z, e_x, e_y, e_z]`` [m]; e is zero before the first step.

    ## Cost
    The tip's closest approach to the target [m]; e = tip position at closest approach
    − target (world frame). Success: cost < 5 mm.

    ## Starting state
    Rope hanging still below the effector at (0, 0, 1) m; target (0.45, 0, 0.75) m.
    Hidden per instance: rope length ∈ [0.4, 0.6] m and linear density
    ∈ [0.05, 0.2] kg/m.

    ## Episode end
    Terminated at success, truncated after 20 rollouts.

    ## Arguments
    ``gym.make("icpi/RopeSwing-v0", render_mode=None | "rgb_array")``.
    """

    task_id = "rope-swing"
    asset = "rope_swing.xml"
    theta_spec = ThetaSpec(
        names=("swing_angle", "stroke_length", "stroke_duration"),
        units=("rad", "m", "s"),
        low=(-0.6, 0.05, 0.15),
        high=(0.6, 0.40, 0.8),
    )
    goal_conditioned = False
    fixed_goal = (0.45, 0.0, 0.75)
    goal_low = (0.3, -0.15, 0.65)
    goal_high = (0.6, 0.15, 0.9)
    physics_ranges = {"rope_length": (0.4, 0.6), "rope_density": (0.05, 0.2)}
    horizon = 2.0
    tracked_sensor = "tip_pos"
    effector_joints = ("effector_x", "effector_y")

    def _apply_instance(self, spec: mujoco.MjSpec, instance: Instance) -> None:
        physics = instance.physics_dict
        seg = physics["rope_length"] / ROPE_SEGMENTS
        parent = spec.body("effector")
        pos = [0.0, 0.0, -0.02]
        rope = spec.find_default("rope")
        for i in range(ROPE_SEGMENTS):
            body = parent.add_body(name=f"rope_{i}", pos=pos)
            body.add_joint(rope, name=f"rope_{i}")
            body.add_geom(
                rope,
                fromto=[0.0, 0.0, 0.0, 0.0, 0.0, -seg],
                mass=physics["rope_density"] * seg,
            )
            parent, pos = body, [0.0, 0.0, -seg]
        parent.add_site(name="tip", pos=[0.0, 0.0, -seg], size=[0.008, 0, 0])
        spec.add_sensor(
            name="tip_pos",
            type=mujoco.mjtSensor.mjSENS_FRAMEPOS,
            objtype=mujoco.mjtObj.mjOBJ_SITE,
            objname="tip",
        )

    def stroke(self, theta: np.ndarray) -> Stroke:
        """See :meth:`Task.stroke`."""
        angle, length, duration = (float(v) for v in theta)
        return Stroke(angle, 0.0, length, duration)

    def outcome(self, trajectory: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The point of the tip's path closest to the goal (see :meth:`Task.outcome`)."""
        return closest_point_on_path(trajectory, goal)


def closest_point_on_path(path: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The point of a polyline closest to a target.

    Args:
        path: Vertices of the polyline, one per row.
        target: The target point.

    Returns:
        The closest point (on a vertex or between two).
    """
    a, b = path[:-1], path[1:]
    ab = b - a
    denom = np.einsum("ij,ij->i", ab, ab)
    t = np.einsum("ij,ij->i", target - a, ab) / np.where(denom > 0.0, denom, 1.0)
    points = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    best = int(np.argmin(np.einsum("ij,ij->i", points - target, points - target)))
    closest: np.ndarray = points[best].copy()
    return closest


class RopeSwingGCTask(RopeSwingTask):
    """Rope swing, goal-conditioned: as :class:`RopeSwingTask`, with the target sampled.

    ## Starting state
    Target uniform in x ∈ [0.3, 0.6] m, y ∈ [−0.15, 0.15] m, z ∈ [0.65, 0.9] m; rope
    length and density as in :class:`RopeSwingTask`. Everything else is the same.

    ## Arguments
    ``gym.make("icpi/RopeSwingGC-v0", render_mode=None | "rgb_array")``.
    """

    task_id = "rope-swing-gc"
    goal_conditioned = True


class RopeSwingEnv(TaskEnv):
    """Gymnasium env ``icpi/RopeSwing-v0``; see :class:`RopeSwingTask`."""

    task_class = RopeSwingTask


class RopeSwingGCEnv(TaskEnv):
    """Gymnasium env ``icpi/RopeSwingGC-v0``; see :class:`RopeSwingGCTask`."""

    task_class = RopeSwingGCTask
