"""A FollowJointTrajectory goal's life, as ros2_controllers' joint_trajectory_controller runs it.

Plain Python (no ROS), shared by both ends of the action in this package: the twin's
action server (:mod:`icpi.robot.sim_arm_node`) decides with :class:`GoalMonitor` when a
goal succeeds or aborts, and the arm node (:mod:`icpi.robot.controller_link`) builds its
tolerances with :func:`goal_tolerances` and names the error codes of the results it gets
with :func:`error_name`.

The controller's rules (``joint_trajectory_controller.cpp``, ros2_controllers master
94e74de, 2026-08): a new goal preempts the active one (its result: ``INVALID_GOAL``,
"Current goal preempted by new incoming action."); while the trajectory runs, a joint
whose actual position leaves the desired one by more than its path tolerance aborts the
goal (``PATH_TOLERANCE_VIOLATED``) and the controller holds; after the last point the goal
succeeds as soon as every joint is within its goal tolerance, and aborts
(``GOAL_TOLERANCE_VIOLATED``) when it is not by the end + ``goal_time_tolerance`` (0: no
limit). A tolerance of 0 is the controller's default; the defaults of the twin are none.
A cancelled goal ends ``canceled`` and the controller holds the measured position at once
(so the arm node never cancels a moving goal: it preempts it with a stop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# control_msgs/action/FollowJointTrajectory result codes.
SUCCESSFUL = 0
INVALID_GOAL = -1
INVALID_JOINTS = -2
OLD_HEADER_TIMESTAMP = -3
PATH_TOLERANCE_VIOLATED = -4
GOAL_TOLERANCE_VIOLATED = -5
_NAMES = {
    SUCCESSFUL: "SUCCESSFUL",
    INVALID_GOAL: "INVALID_GOAL",
    INVALID_JOINTS: "INVALID_JOINTS",
    OLD_HEADER_TIMESTAMP: "OLD_HEADER_TIMESTAMP",
    PATH_TOLERANCE_VIOLATED: "PATH_TOLERANCE_VIOLATED",
    GOAL_TOLERANCE_VIOLATED: "GOAL_TOLERANCE_VIOLATED",
}
PREEMPTED = "Current goal preempted by new incoming action."


def error_name(code: int) -> str:
    """The name of a FollowJointTrajectory result code (``error_code -7`` when unknown)."""
    return _NAMES.get(int(code), f"error_code {int(code)}")


@dataclass(frozen=True)
class Tolerances:
    """Position tolerances of one goal, per joint in the controller's order [rad or m]."""

    path: tuple[float, ...]
    """Largest |actual − desired| while the trajectory runs; 0: none."""
    goal: tuple[float, ...]
    """Largest |actual − last point| for success after the end; 0: none."""
    goal_time: float
    """Longest wait for the goal tolerance after the end [s]; 0: no limit."""


def goal_tolerances(
    joint_names: Sequence[str], path: float, goal: float, goal_time: float
) -> tuple[list[tuple[str, float]], list[tuple[str, float]], float]:
    """The tolerances the arm node puts in every goal: the same for every joint.

    Args:
        joint_names: The joints.
        path: Path tolerance [rad or m]; 0 leaves the controller's default.
        goal: Goal tolerance [rad or m]; 0 leaves the controller's default.
        goal_time: Goal time tolerance [s].

    Returns:
        ``(path, goal, goal_time)``: (joint, position tolerance) pairs, empty where the
        tolerance is 0 (the message's "unspecified"), and the goal time.
    """
    names = list(joint_names)
    return (
        [(n, float(path)) for n in names] if path > 0 else [],
        [(n, float(goal)) for n in names] if goal > 0 else [],
        float(goal_time),
    )


def tolerances_of(
    joint_names: Sequence[str],
    path: Sequence[tuple[str, float]],
    goal: Sequence[tuple[str, float]],
    goal_time: float,
) -> Tolerances:
    """The tolerances of a goal, per controller joint (unnamed joints and 0: none).

    Args:
        joint_names: The controller's joints, in its order.
        path: (joint, position tolerance) of the goal's ``path_tolerance``.
        goal: (joint, position tolerance) of the goal's ``goal_tolerance``.
        goal_time: The goal's ``goal_time_tolerance`` [s].

    Returns:
        The tolerances (a negative value, "erased" in the message, counts as none).
    """
    p, g = dict(path), dict(goal)
    return Tolerances(
        path=tuple(max(0.0, float(p.get(n, 0.0))) for n in joint_names),
        goal=tuple(max(0.0, float(g.get(n, 0.0))) for n in joint_names),
        goal_time=max(0.0, float(goal_time)),
    )


@dataclass(frozen=True)
class GoalEnd:
    """How a goal ended: ``succeeded`` or ``aborted``, with the result's code and text."""

    status: str
    error_code: int
    error_string: str


class GoalMonitor:
    """Decides, step by step, when a running goal succeeds or aborts (see the module docstring)."""

    def __init__(
        self,
        joint_names: Sequence[str],
        end_time: float,
        final: ArrayLike,
        tolerances: Tolerances,
    ) -> None:
        """Watch one goal.

        Args:
            joint_names: The controller's joints (for messages), in its order.
            end_time: When the trajectory's last point is due, on the controller's clock [s].
            final: The last point's positions.
            tolerances: The goal's tolerances.
        """
        self.joint_names = list(joint_names)
        self.end_time = float(end_time)
        self.final = np.asarray(final, dtype=np.float64)
        self.tol = tolerances

    def check(self, now: float, desired: ArrayLike, actual: ArrayLike) -> GoalEnd | None:
        """Judge the goal at one control step.

        Args:
            now: The controller's clock [s].
            desired: The desired joint positions now.
            actual: The measured joint positions now.

        Returns:
            How the goal ends now, or ``None`` while it goes on.
        """
        q = np.asarray(actual, dtype=np.float64)
        if now < self.end_time:
            err = np.abs(q - np.asarray(desired, dtype=np.float64))
            bad = [
                f"{n} off by {e:.4f} (path tolerance {t})"
                for n, e, t in zip(self.joint_names, err, self.tol.path, strict=True)
                if 0 < t < e
            ]
            if bad:
                return GoalEnd(
                    "aborted",
                    PATH_TOLERANCE_VIOLATED,
                    "Aborted due to path tolerance violation: " + "; ".join(bad),
                )
            return None
        err = np.abs(q - self.final)
        outside = [
            f"{n} off by {e:.4f} (goal tolerance {t})"
            for n, e, t in zip(self.joint_names, err, self.tol.goal, strict=True)
            if 0 < t < e
        ]
        if not outside:
            return GoalEnd("succeeded", SUCCESSFUL, "Goal successfully reached!")
        late = now - self.end_time
        if self.tol.goal_time > 0 and late > self.tol.goal_time:
            return GoalEnd(
                "aborted",
                GOAL_TOLERANCE_VIOLATED,
                f"Aborted due to goal_time_tolerance exceeding by {late - self.tol.goal_time:.6f}"
                " seconds: " + "; ".join(outside),
            )
        return None
