"""The FollowJointTrajectory goal rules the twin serves (no ROS)."""

from __future__ import annotations

from icpi.robot.trajectory_goal import (
    GOAL_TOLERANCE_VIOLATED,
    PATH_TOLERANCE_VIOLATED,
    SUCCESSFUL,
    GoalMonitor,
    error_name,
    goal_tolerances,
    tolerances_of,
)

JOINTS = ["a", "b"]


def test_tolerances_travel_per_joint_and_zero_means_unspecified():
    path, goal, goal_time = goal_tolerances(JOINTS, 0.1, 0.0, 3.0)
    assert path == [("a", 0.1), ("b", 0.1)] and goal == [] and goal_time == 3.0
    tol = tolerances_of(["b", "a", "c"], [*path, ("x", 5.0)], [("a", -1.0)], 3.0)
    assert tol.path == (0.1, 0.1, 0.0)  # by name, in the controller's order; unknown: none
    assert tol.goal == (0.0, 0.0, 0.0)  # -1 ("erased") is none too


def test_path_tolerance_aborts_only_while_the_trajectory_runs():
    tol = tolerances_of(JOINTS, [("a", 0.05)], [], 0.0)
    m = GoalMonitor(JOINTS, end_time=2.0, final=[1.0, 1.0], tolerances=tol)
    assert m.check(1.0, desired=[0.5, 0.5], actual=[0.53, 0.9]) is None  # b has no tolerance
    end = m.check(1.5, desired=[0.5, 0.5], actual=[0.56, 0.5])
    assert end.status == "aborted" and end.error_code == PATH_TOLERANCE_VIOLATED
    assert "a off by 0.0600" in end.error_string
    # After the end only the goal tolerance counts (none here): success.
    end = m.check(2.0, desired=[1.0, 1.0], actual=[0.5, 0.5])
    assert end.status == "succeeded" and end.error_code == SUCCESSFUL


def test_goal_tolerance_waits_up_to_the_goal_time_then_aborts():
    tol = tolerances_of(JOINTS, [], [("a", 0.01), ("b", 0.01)], 0.5)
    m = GoalMonitor(JOINTS, end_time=2.0, final=[1.0, 1.0], tolerances=tol)
    assert m.check(2.2, desired=[1.0, 1.0], actual=[0.98, 1.0]) is None  # still settling
    assert m.check(2.3, desired=[1.0, 1.0], actual=[0.995, 1.0]).status == "succeeded"
    end = m.check(2.6, desired=[1.0, 1.0], actual=[0.98, 1.0])
    assert end.status == "aborted" and end.error_code == GOAL_TOLERANCE_VIOLATED
    # Without a goal time the controller waits for ever.
    forever = GoalMonitor(JOINTS, 2.0, [1.0, 1.0], tolerances_of(JOINTS, [], [("a", 0.01)], 0.0))
    assert forever.check(100.0, desired=[1.0, 1.0], actual=[0.9, 1.0]) is None


def test_error_names():
    assert error_name(-4) == "PATH_TOLERANCE_VIOLATED"
    assert error_name(-9) == "error_code -9"
