"""``icpi-sim-arm-node``: the MuJoCo ball-roll twin behind the arm's topics.

Subscribes ``trajectory_topic`` (trajectory_msgs/JointTrajectory: a new one takes over as
``controller_model`` says, see :mod:`icpi.robot.twin`; the drive never exceeds
``velocity_limits`` and ``acceleration_limits``, and says so when it had to hold a
command to them). Publishes ``joint_state_topic``
(sensor_msgs/JointState at ``joint_state_rate``) and ``ball_topic``
(geometry_msgs/PointStamped at ``camera_rate``, with ``camera_latency``, Gaussian
``camera_noise``, ``camera_dropout`` and an optional ``camera_fail_after``).

The physics runs on a worker thread at ``time_scale`` simulated seconds per wall second
(at most: a twin starved of CPU slows its clock rather than jump ahead); see
:mod:`icpi.robot.twin` for how a trajectory drives the effector. With ``lockstep`` it
subscribes ``grant_topic`` (std_msgs/Float64MultiArray ``[time s, trajectories]`` from
the arm node) and never advances its clock past the latest granted time whose
trajectories it has all received: a trajectory cannot arrive late, on any machine.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PointStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from icpi.robot.params import SimArmConfig, declare_config
from icpi.robot.ros_common import duration_s, run_node, time_s
from icpi.robot.skill import ArmModel
from icpi.robot.twin import Twin

# Worker tick [s].
TICK_S = 0.002
# Largest backlog the physics catches up at once [wall s]; a twin further behind (starved
# of CPU) slows its clock down instead.
MAX_LAG_S = 0.05


class SimArmNode(Node):
    """The simulated arm (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare the parameters, build the twin and start the physics thread.

        Args:
            **kwargs: Passed to :class:`rclpy.node.Node`.

        Raises:
            ValueError: On invalid parameters.
        """
        super().__init__("icpi_sim_arm", **kwargs)
        self.cfg = declare_config(self, SimArmConfig)
        cfg = self.cfg
        arm = cfg.arm()
        if not isinstance(arm, ArmModel):
            raise ValueError(
                "the twin simulates the planar models (planar_2r, cartesian_xy) only; a"
                " serial arm in the twin is not done yet (robot/README.md, issue 15)"
            )
        self.twin = Twin(
            cfg.skill,
            arm,
            cfg.home,
            cfg.physics,
            controller_model=cfg.controller_model,
            velocity_limits=cfg.velocity_limits,
            acceleration_limits=cfg.acceleration_limits,
        )
        self.rng = np.random.default_rng(cfg.seed)
        self.js_pub = self.create_publisher(JointState, cfg.joint_state_topic, 20)
        self.ball_pub = self.create_publisher(PointStamped, cfg.ball_topic, qos_profile_sensor_data)
        self.clock_pub = self.create_publisher(Clock, "/clock", 10) if cfg.publish_clock else None
        self.create_subscription(
            JointTrajectory,
            cfg.trajectory_topic,
            self._on_trajectory,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
        )
        # Received trajectories (times, positions, velocities, accelerations, stamp), for
        # the physics thread, which alone touches the twin.
        self._inbox: collections.deque[tuple[Any, ...]] = collections.deque()
        # Lockstep: grants (time, trajectories sent) and the trajectories accepted so far.
        self._grants: collections.deque[tuple[float, int]] = collections.deque()
        self._accepted = 0
        if cfg.lockstep:
            self.create_subscription(
                Float64MultiArray,
                cfg.grant_topic,
                self._on_grant,
                QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
            )
        self._stop = threading.Event()
        self._traj_wall: float | None = None
        self._pending: collections.deque[tuple[float, Any, np.ndarray]] = collections.deque()
        self._thread = threading.Thread(target=self._loop, name="icpi-sim-arm", daemon=True)
        # The physics (and its joint states) start once the executor spins, so that no one
        # sees the arm before its trajectory subscription is served.
        self._starter = self.create_timer(0.01, self._start_physics)
        self.get_logger().info(
            f"simulated arm ready: {cfg.skill}, physics {cfg.physics}, time_scale"
            f" {cfg.time_scale}, controller {cfg.controller_model}"
            + (", in lockstep with the arm node's grants" if cfg.lockstep else ", real time")
        )

    def _start_physics(self) -> None:
        self._starter.cancel()
        if not self._thread.is_alive():
            self._thread.start()

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        names = list(msg.joint_names)
        if sorted(names) != sorted(self.cfg.joint_names) or not msg.points:
            self.get_logger().warning(
                f"ignored trajectory for joints {names} with {len(msg.points)} points",
                throttle_duration_sec=1.0,
            )
            return
        order = [names.index(n) for n in self.cfg.joint_names]
        try:
            times = [duration_s(p.time_from_start) for p in msg.points]
            pos = np.array([[float(p.positions[j]) for j in order] for p in msg.points])
            vel = acc = None
            if all(len(p.velocities) == len(names) for p in msg.points):
                vel = np.array([[float(p.velocities[j]) for j in order] for p in msg.points])
                if all(len(p.accelerations) == len(names) for p in msg.points):
                    acc = np.array([[p.accelerations[j] for j in order] for p in msg.points])
        except (IndexError, ValueError) as err:
            self.get_logger().warning(f"ignored malformed trajectory: {err}")
            return
        # Handed to the physics thread, which takes it before its next step: no lock to
        # wait for, so a trajectory received before its stamp starts on time.
        self._inbox.append((times, pos, vel, acc, time_s(msg.header.stamp)))
        self._accepted += 1  # after the hand-over: a grant never outruns its trajectories

    def _on_grant(self, msg: Float64MultiArray) -> None:
        data = list(msg.data)
        if len(data) == 2 and all(np.isfinite(data)):
            self._grants.append((float(data[0]), int(data[1])))

    def _granted(self, granted: float) -> float:
        """The latest granted time whose trajectories have all arrived (physics thread)."""
        while self._grants and self._grants[0][1] <= self._accepted:
            granted = max(granted, self._grants.popleft()[0])
        return granted

    def _take_trajectories(self) -> None:
        """Schedule the received trajectories on the twin (physics thread)."""
        while self._inbox:
            times, pos, vel, acc, stamp = self._inbox.popleft()
            try:
                late = self.twin.command(
                    times,
                    pos,
                    reset_at_home_tol=self._reset_tol(),
                    start=stamp or None,
                    velocities=vel,
                    accelerations=acc,
                )
            except ValueError as err:
                self.get_logger().warning(f"ignored malformed trajectory: {err}")
                continue
            self._traj_wall = time.monotonic()
            if late > 0:
                self.get_logger().warning(
                    f"late trajectory: {len(times)} points arrived {1e3 * late:.1f} ms"
                    " after their start stamp"
                )

    def _reset_tol(self) -> float | None:
        return 0.02 if self.cfg.reset_object_at_home else None

    def _loop(self) -> None:
        cfg = self.cfg
        dt = self.twin.dt
        wall0 = time.monotonic()
        sim0 = self.twin.time
        next_js = next_cam = next_clock = wall0
        max_steps = max(1, round(MAX_LAG_S * cfg.time_scale / dt))
        granted = 0.0
        limited = 0
        while not self._stop.is_set() and self.context.ok():
            now = time.monotonic()
            behind = int((sim0 + (now - wall0) * cfg.time_scale - self.twin.time) / dt)
            if behind > max_steps:
                # Starved (a loaded machine): simulated time slows down instead of jumping
                # ahead in a burst with no joint states, camera or /clock in between.
                sim0 -= (behind - max_steps) * dt
                behind = max_steps
            self._take_trajectories()
            if cfg.lockstep:
                granted = self._granted(granted)
                behind = min(behind, int((granted - self.twin.time) / dt + 1e-6))
            for _ in range(max(behind, 0)):
                self.twin.step()
                self._take_trajectories()
            if self.twin.limited > limited:
                self.get_logger().error(
                    f"drive limited: a commanded motion exceeded the arm's limits for"
                    f" {self.twin.limited - limited} steps; held to the limits",
                    throttle_duration_sec=1.0,
                )
                limited = self.twin.limited
            q, qdot = self.twin.joint_state()
            ball = self.twin.object_xyz()
            traj_wall = self._traj_wall
            sim_ns = round(self.twin.time * 1e9)
            # Every stamp is simulated time, published on /clock (use_sim_time elsewhere).
            stamp = Time(sec=sim_ns // 1_000_000_000, nanosec=sim_ns % 1_000_000_000)
            if self.clock_pub is not None and now >= next_clock:
                next_clock = max(next_clock + 1.0 / cfg.clock_rate, now)
                self.clock_pub.publish(Clock(clock=stamp))
            if now >= next_js:
                next_js = max(next_js + 1.0 / cfg.joint_state_rate, now)
                js = JointState(name=list(cfg.joint_names))
                js.header.stamp = stamp
                js.position = q.tolist()
                js.velocity = qdot.tolist()
                self.js_pub.publish(js)
            if now >= next_cam:
                next_cam = max(next_cam + 1.0 / cfg.camera_rate, now)
                failed = (
                    cfg.camera_fail_after >= 0
                    and traj_wall is not None
                    and now - traj_wall > cfg.camera_fail_after
                )
                if not failed and self.rng.random() >= cfg.camera_dropout:
                    noisy = ball.copy()
                    if cfg.camera_noise > 0:
                        noisy[:2] += self.rng.normal(0.0, cfg.camera_noise, size=2)
                    self._pending.append((now + cfg.camera_latency, stamp, noisy))
            while self._pending and self._pending[0][0] <= now:
                _, st, p = self._pending.popleft()
                msg = PointStamped(point=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])))
                msg.header.stamp = st
                msg.header.frame_id = cfg.frame_id
                self.ball_pub.publish(msg)
            self._stop.wait(TICK_S)

    def close(self) -> None:
        """Stop the physics thread (called before ``destroy_node``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)


def main(args: list[str] | None = None) -> int:
    """Console script ``icpi-sim-arm-node``.

    Args:
        args: Command-line arguments (default ``sys.argv``).

    Returns:
        Exit code.
    """
    return run_node(SimArmNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
