"""Small rclpy helpers shared by the nodes (imports rclpy: only the nodes import this)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from builtin_interfaces.msg import Duration, Time
from rclpy.node import Node
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from icpi.robot.skill import Plan


def follow_joint_trajectory() -> Any | None:
    """``control_msgs.action.FollowJointTrajectory``, or ``None`` where it is not built.

    control_msgs is not on the package index: ``make ros-types`` builds it into the venv
    (``vendor/control_msgs``); a ROS 2 installation has it.
    """
    try:
        from control_msgs.action import FollowJointTrajectory
    except ImportError:
        return None
    return FollowJointTrajectory


def duration_msg(seconds: float) -> Duration:
    """A ``builtin_interfaces/Duration`` of ``seconds`` (≥ 0)."""
    ns = round(max(0.0, seconds) * 1e9)
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def duration_s(d: Any) -> float:
    """Seconds of a ``builtin_interfaces/Duration``."""
    return float(d.sec) + 1e-9 * float(d.nanosec)


def time_msg(seconds: float) -> Time:
    """A ``builtin_interfaces/Time`` of ``seconds`` (≥ 0) on a ROS clock."""
    ns = round(max(0.0, seconds) * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def time_s(t: Any) -> float:
    """Seconds of a ``builtin_interfaces/Time``."""
    return float(t.sec) + 1e-9 * float(t.nanosec)


def trajectory_msg(plan: Plan, joint_names: Sequence[str]) -> JointTrajectory:
    """A JointTrajectory of a plan, header stamp unset.

    Set ``header.stamp`` to its start time just before sending: the controller keeps
    following its current trajectory until then.

    Args:
        plan: The plan.
        joint_names: Joint names, in the plan's column order.

    Returns:
        The message.
    """
    msg = JointTrajectory()
    msg.joint_names = list(joint_names)
    pos = plan.positions.tolist()
    vel = plan.velocities.tolist()
    acc = plan.accelerations.tolist()
    msg.points = [
        JointTrajectoryPoint(
            positions=pos[i],
            velocities=vel[i],
            accelerations=acc[i],
            time_from_start=duration_msg(float(t)),
        )
        for i, t in enumerate(plan.times)
    ]
    return msg


class RosLogHandler(logging.Handler):
    """Forwards the library's ``logging`` records to the node's rclpy logger."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record to the rclpy logger."""
        logger = self.node.get_logger()
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            logger.error(text)
        elif record.levelno >= logging.WARNING:
            logger.warning(text)
        elif record.levelno >= logging.INFO:
            logger.info(text)
        else:
            logger.debug(text)


def run_node(make: Callable[[], Node], args: list[str] | None = None) -> int:
    """The ``rclpy.init()`` / spin / ``destroy_node()`` / ``rclpy.shutdown()`` form.

    Spins until shutdown (Ctrl-C, SIGTERM) or until the node sets ``done``, on a
    :class:`~rclpy.executors.SingleThreadedExecutor`: each wait serves every ready input
    once (round robin), so a flood on one topic cannot starve the others, and the nodes'
    callbacks only hand work over (trials, the ICPI loop and the physics run on their own
    threads). Not rclpy 9.1's ``MultiThreadedExecutor``: it re-submits a callback that
    waits in its thread pool's queue on every turn of its spin loop without waiting
    (ros2/rclpy#1452, fixed upstream by ros2/rclpy#1547 after 9.1.2, the newest wheel on
    the index); on two cores that loop held the GIL ~6000 times a second, queued ~1700
    copies of the same callbacks and delayed joint states, camera points and ``/clock``
    by up to 0.45 s here and by over 1 s on the CI machines of issue 24.

    Args:
        make: Builds the node (after ``rclpy.init``).
        args: Command-line arguments (default ``sys.argv``).

    Returns:
        The process exit code (1 when the node could not be built).
    """
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    code = 0
    try:
        node = make()
        handler = RosLogHandler(node)
        logging.getLogger("icpi").addHandler(handler)
        logging.getLogger("icpi").setLevel(logging.INFO)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not getattr(node, "done", False):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as err:  # a bad parameter: say so and exit non-zero
        logging.getLogger("icpi").error("%s", err)
        sys.stderr.write(f"error: {err}\n")
        code = 1
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT/SIGTERM shut the context down between ``rclpy.ok()`` and the wait (an
        # RCLError from the wait set): a normal stop, not a traceback
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    code = max(code, int(getattr(node, "exit_code", 0) or 0))
    return code


class WarnThrottle:
    """Logs ignored messages at most once per ``period`` per source, with a count.

    Our own throttle: rclpy's ``throttle_duration_sec`` costs ~1.2 ms per call (it
    inspects the caller's frame), which a 1000 msg/s flood turns into a full core.
    """

    def __init__(self, node: Node, period: float = 1.0) -> None:
        """Log through ``node``'s logger.

        Args:
            node: The node.
            period: Longest silence of one source [s].
        """
        import threading
        import time

        self.node = node
        self.period = period
        self._clock = time.monotonic
        self._lock = threading.Lock()
        self._ignored: dict[str, int] = {}
        self._next: dict[str, float] = {}

    def __call__(self, source: str, why: str) -> None:
        """Log that a message of ``source`` was ignored and why (throttled).

        Args:
            source: What was ignored (e.g. ``image``).
            why: The reason.
        """
        now = self._clock()
        with self._lock:
            count = self._ignored.get(source, 0) + 1
            if now < self._next.get(source, 0.0):
                self._ignored[source] = count
                return
            self._ignored[source] = 0
            self._next[source] = now + self.period
        more = f" ({count - 1} more since the last report)" if count > 1 else ""
        self.node.get_logger().warning(f"ignored {source}: {why}{more}")
