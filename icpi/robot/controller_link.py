"""How the arm node hands trajectories to the controller: its topic, or its action.

``trajectory_transport`` picks one (``auto``: the action where control_msgs is built into
the environment, ``make ros-types``, else the topic):

- :class:`TopicLink` publishes ``trajectory_msgs/JointTrajectory`` on ``trajectory_topic``
  and learns nothing back: the node watches joint states alone.
- :class:`ActionLink` sends each trajectory as a ``control_msgs/FollowJointTrajectory``
  goal to ``trajectory_action`` with the node's tolerances (path: ``path_tolerance``;
  goal: ``position_tolerance``; goal time: ``motion_timeout``), and reports a *fault* of
  the newest goal to the trial: rejected, aborted with an error code (the controller's
  own reason, e.g. ``PATH_TOLERANCE_VIOLATED``), no answer or no feedback for
  ``feedback_timeout`` while it runs, or no action server at all. A newer goal preempts
  the running one on the controller (which ends it aborted, "preempted"), so a stop
  simply follows the trial's goal. A stock controller answers a cancel by holding the
  measured position at once, the snap a stop along the path avoids
  (:mod:`icpi.robot.trajectory_goal`): so on an e-stop the node preempts a moving goal
  with its stop, and cancels the running goals only of an arm at rest.

Imports rclpy (only the arm node imports this module).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from trajectory_msgs.msg import JointTrajectory

from icpi.robot.params import SkillNodeConfig
from icpi.robot.ros_common import duration_msg, follow_joint_trajectory
from icpi.robot.trajectory_goal import error_name, goal_tolerances

log = logging.getLogger(__name__)

TRANSPORTS = ("auto", "action", "topic")
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def resolve_transport(choice: str) -> str:
    """``action`` or ``topic`` for a ``trajectory_transport`` value.

    Args:
        choice: ``auto``, ``action`` or ``topic``.

    Returns:
        The transport to use.

    Raises:
        ValueError: On an unknown choice, or ``action`` without the control_msgs types.
    """
    if choice not in TRANSPORTS:
        raise ValueError(f"trajectory_transport must be one of {TRANSPORTS}, got {choice!r}")
    built = follow_joint_trajectory() is not None
    if choice == "action" and not built:
        raise ValueError(
            "trajectory_transport is action, but control_msgs is not built into this"
            " environment (make ros-types; robot/README.md)"
        )
    if choice == "auto":
        return "action" if built else "topic"
    return choice


class TopicLink:
    """Trajectories on the controller's topic (no answer comes back)."""

    transport = "topic"

    def __init__(self, node: Node, cfg: SkillNodeConfig) -> None:
        """Create the publisher.

        Args:
            node: The arm node.
            cfg: Its parameters (``trajectory_topic``).
        """
        self.pub = node.create_publisher(JointTrajectory, cfg.trajectory_topic, RELIABLE)
        self.where = cfg.trajectory_topic

    def send(self, msg: JointTrajectory) -> None:
        """Publish one trajectory."""
        self.pub.publish(msg)

    def fault(self) -> str | None:
        """The topic reports nothing: never a fault."""
        return None

    def ready(self) -> bool:
        """A topic needs no peer to send (the joint states tell whether it moves)."""
        return True

    def cancel(self) -> None:
        """Nothing to cancel on a topic."""


@dataclass
class _Goal:
    """One goal sent, as far as the node knows."""

    sent: float
    handle: Any = None
    heard: float = 0.0
    done: bool = False
    cancelled: bool = False
    fault: str | None = None


class ActionLink:
    """Trajectories as FollowJointTrajectory goals (see the module docstring)."""

    transport = "action"

    def __init__(
        self,
        node: Node,
        cfg: SkillNodeConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the action client (its answers arrive on the node's executor).

        Args:
            node: The arm node.
            cfg: Its parameters.
            clock: Monotonic clock of the feedback watchdog [s].

        Raises:
            ValueError: If control_msgs is not built.
        """
        from rclpy.action.client import ActionClient

        action = follow_joint_trajectory()
        if action is None:
            raise ValueError("control_msgs is not built into this environment (make ros-types)")
        from control_msgs.msg import JointTolerance

        self.action = action
        self.where = cfg.trajectory_action
        self.client: Any = ActionClient(node, action, cfg.trajectory_action)
        path, goal, goal_time = goal_tolerances(
            cfg.joint_names, cfg.path_tolerance, cfg.position_tolerance, cfg.motion_timeout
        )
        self._path = [JointTolerance(name=n, position=v) for n, v in path]
        self._goal = [JointTolerance(name=n, position=v) for n, v in goal]
        self._goal_time = duration_msg(goal_time)
        self.timeout = cfg.feedback_timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._goals: list[_Goal] = []  # sent, not yet ended
        self._newest: _Goal | None = None

    # ------------------------------------------------------------------ sending
    def send(self, msg: JointTrajectory) -> None:
        """Send one trajectory as a goal (non-blocking; answers arrive on the executor)."""
        goal = self.action.Goal(
            trajectory=msg,
            path_tolerance=self._path,
            goal_tolerance=self._goal,
            goal_time_tolerance=self._goal_time,
        )
        entry = _Goal(sent=self.clock())
        ready = self.client.server_is_ready()
        with self._lock:
            self._newest = entry
            if not ready:
                entry.done = True
                entry.fault = f"no action server {self.where!r} (is the controller running?)"
                return
            self._goals.append(entry)
        future = self.client.send_goal_async(
            goal, feedback_callback=lambda _msg: self._heard(entry)
        )
        future.add_done_callback(lambda f: self._on_response(entry, f))

    def _heard(self, entry: _Goal) -> None:
        entry.heard = self.clock()

    def _on_response(self, entry: _Goal, future: Any) -> None:
        try:
            handle = future.result()
        except Exception as err:  # the request failed in transport
            self._end(entry, f"sending the goal failed: {err}")
            return
        if handle is None or not handle.accepted:
            self._end(entry, "the controller rejected the trajectory (see its log)")
            return
        entry.handle = handle
        entry.heard = self.clock()
        handle.get_result_async().add_done_callback(lambda f: self._on_result(entry, f))
        if entry.cancelled:  # cancelled before the answer came
            handle.cancel_goal_async()

    def _on_result(self, entry: _Goal, future: Any) -> None:
        from action_msgs.msg import GoalStatus

        try:
            answer = future.result()
        except Exception as err:
            self._end(entry, f"no result: {err}")
            return
        status, result = answer.status, answer.result
        if status == GoalStatus.STATUS_SUCCEEDED or entry.cancelled:
            self._end(entry, None)
            return
        what = "aborted" if status == GoalStatus.STATUS_ABORTED else f"ended (status {status})"
        self._end(
            entry,
            f"the controller {what} the trajectory: {error_name(result.error_code)}"
            f" ({result.error_string})",
        )

    def _end(self, entry: _Goal, fault: str | None) -> None:
        with self._lock:
            entry.done = True
            if entry is self._newest:
                entry.fault = fault  # an older goal ends preempted by a newer one: no fault
            if entry in self._goals:
                self._goals.remove(entry)
        if fault and entry is self._newest:
            log.warning("%s", fault)

    # ------------------------------------------------------------------ state
    def ready(self) -> bool:
        """Whether the controller's action server is there."""
        return bool(self.client.server_is_ready())

    def fault(self) -> str | None:
        """Why the newest goal failed, or ``None`` while it runs or when it succeeded."""
        with self._lock:
            entry = self._newest
        if entry is None:
            return None
        if entry.fault:
            return entry.fault
        if entry.done or entry.cancelled:
            return None
        silent = self.clock() - (entry.heard if entry.handle is not None else entry.sent)
        if silent > self.timeout:
            if entry.handle is None:
                return f"the action server {self.where!r} did not answer for {silent:.2f} s"
            return f"no feedback from the controller for {silent:.2f} s"
        return None

    def cancel(self) -> None:
        """Cancel every goal still running (call only with the arm at rest)."""
        with self._lock:
            goals = list(self._goals)
            for g in goals:
                g.cancelled = True
        for g in goals:
            if g.handle is not None:
                g.handle.cancel_goal_async()


def make_link(node: Node, cfg: SkillNodeConfig) -> Any:
    """The link ``cfg.trajectory_transport`` asks for.

    Args:
        node: The arm node.
        cfg: Its parameters.

    Returns:
        A :class:`TopicLink` or an :class:`ActionLink`.

    Raises:
        ValueError: On an unknown transport or a missing control_msgs build.
    """
    if resolve_transport(cfg.trajectory_transport) == "action":
        return ActionLink(node, cfg)
    return TopicLink(node, cfg)
