"""``icpi-sim-arm-node``: the MuJoCo ball-roll twin behind the arm's topics.

The twin is the configured arm: a planar model drives the task's striker, and
``kinematics: serial`` puts the UR5e or Panda model itself on the table, its joints under
position control at every physics step (:mod:`icpi.robot.twin`). With ``camera`` it
renders ``image_topic`` (sensor_msgs/Image rgb8, headless) and ``camera_info_topic`` at
``image_rate`` per simulated second, of the table with the ArUco marker; the ball then
reaches the arm node only through ``icpi-tracker-node`` (its true position goes to
``ground_truth_topic``, exact, for tests and benchmarks).

Takes trajectories on ``trajectory_topic`` (trajectory_msgs/JointTrajectory) and, where
control_msgs is built, as goals of the ``trajectory_action`` action
(control_msgs/FollowJointTrajectory) served the way joint_trajectory_controller serves it
(:mod:`icpi.robot.trajectory_goal`: a new goal preempts the running one, tolerances,
feedback at ``feedback_rate``, a cancel holds the measured position). Either way a new
trajectory takes over as ``controller_model`` says, see :mod:`icpi.robot.twin`; the drive
never exceeds ``velocity_limits`` and ``acceleration_limits``, and says so when it had to
hold a command to them. Publishes ``joint_state_topic``
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
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from icpi.robot.params import SimArmConfig, declare_config, refuse_undeclared
from icpi.robot.ros_common import duration_s, follow_joint_trajectory, run_node, time_s
from icpi.robot.trajectory_goal import (
    INVALID_GOAL,
    PREEMPTED,
    GoalMonitor,
    tolerances_of,
)
from icpi.robot.twin import Twin

# Worker tick [s].
TICK_S = 0.002
# Largest backlog the physics catches up at once [wall s]; a twin further behind (starved
# of CPU) slows its clock down instead.
MAX_LAG_S = 0.05
# jtc: a take-over that moves the reference further than this is logged [rad or m] (one
# from the measured state moves it by the tracking error, micrometres on the twin).
TAKEOVER_JUMP = 1e-4


class _Served:
    """A FollowJointTrajectory goal the twin runs."""

    def __init__(self, handle: Any, monitor: GoalMonitor) -> None:
        self.handle = handle
        self.monitor = monitor
        self.preempted = False


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
        refuse_undeclared(self)
        cfg = self.cfg
        camera = cfg.camera_setup()
        self.twin = Twin(
            cfg.skill,
            cfg.arm(),
            cfg.home,
            cfg.physics,
            controller_model=cfg.controller_model,
            velocity_limits=cfg.velocity_limits,
            acceleration_limits=cfg.acceleration_limits,
            camera=camera,
            marker=cfg.marker_setup() if camera is not None else None,
        )
        self.rng = np.random.default_rng(cfg.seed)
        self.js_pub = self.create_publisher(JointState, cfg.joint_state_topic, 20)
        # With the camera, the ball reaches the arm only through the tracker's images: its
        # true position goes to ground_truth_topic (tests, benchmarks), exact.
        self.ball_pub = self.create_publisher(
            PointStamped,
            cfg.ground_truth_topic if camera is not None else cfg.ball_topic,
            qos_profile_sensor_data,
        )
        self.image_pub = self.info_pub = None
        if camera is not None:
            self.image_pub = self.create_publisher(Image, cfg.image_topic, qos_profile_sensor_data)
            self.info_pub = self.create_publisher(
                CameraInfo, cfg.camera_info_topic, qos_profile_sensor_data
            )
            k = camera.camera_matrix()
            self._info = CameraInfo(
                width=camera.width,
                height=camera.height,
                distortion_model="plumb_bob",
                d=[0.0] * 5,
                k=k.ravel().tolist(),
                r=np.eye(3).ravel().tolist(),
                p=np.column_stack([k, np.zeros(3)]).ravel().tolist(),
            )
            self._info.header.frame_id = cfg.camera_frame_id
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
        # What the physics thread last saw: (sim time, q, q̇, reference (3, J)).
        q0 = np.asarray(cfg.home, dtype=np.float64)
        self._seen: tuple[float, np.ndarray, np.ndarray, np.ndarray] = (
            0.0,
            q0,
            np.zeros_like(q0),
            np.stack([q0, np.zeros_like(q0), np.zeros_like(q0)]),
        )
        # Goals of the action: the newest (running) one and those still to be ended.
        self._goal_lock = threading.Lock()
        self._goal: _Served | None = None
        self._goals: list[_Served] = []
        self._goal_wake = threading.Event()
        self._goal_thread = threading.Thread(
            target=self._watch_goals, name="icpi-sim-arm-goals", daemon=True
        )
        self.action = follow_joint_trajectory()
        self.action_server = None
        if self.action is not None:
            from rclpy.action.server import ActionServer, CancelResponse

            self.action_server = ActionServer(
                self,
                self.action,
                cfg.trajectory_action,
                execute_callback=lambda handle: None,  # every goal ends through _finish
                goal_callback=self._on_goal,
                handle_accepted_callback=self._on_accepted,
                cancel_callback=lambda _handle: CancelResponse.ACCEPT,
            )
        self._traj_sim: float | None = None
        self._pending: collections.deque[tuple[float, Any, np.ndarray]] = collections.deque()
        self._thread = threading.Thread(target=self._loop, name="icpi-sim-arm", daemon=True)
        # The physics (and its joint states) start once the executor spins, so that no one
        # sees the arm before its trajectory subscription is served.
        self._starter = self.create_timer(0.01, self._start_physics)
        serves = f", action {cfg.trajectory_action}" if self.action_server is not None else ""
        self.get_logger().info(
            f"simulated arm ready: {cfg.skill}, physics {cfg.physics}, time_scale"
            f" {cfg.time_scale}, controller {cfg.controller_model}, topic"
            f" {cfg.trajectory_topic}{serves}"
            + (", in lockstep with the arm node's grants" if cfg.lockstep else ", real time")
        )

    def _start_physics(self) -> None:
        self._starter.cancel()
        if not self._thread.is_alive():
            self._thread.start()
        if self.action_server is not None and not self._goal_thread.is_alive():
            self._goal_thread.start()

    def _parse(self, msg: JointTrajectory) -> tuple[Any, ...] | str:
        """(times, positions, velocities, accelerations, stamp) of a trajectory, or why not."""
        names = list(msg.joint_names)
        if sorted(names) != sorted(self.cfg.joint_names) or not msg.points:
            return f"trajectory for joints {names} with {len(msg.points)} points"
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
            return f"malformed trajectory: {err}"
        return times, pos, vel, acc, time_s(msg.header.stamp)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        parsed = self._parse(msg)
        if isinstance(parsed, str):
            self.get_logger().warning(f"ignored {parsed}", throttle_duration_sec=1.0)
            return
        # Handed to the physics thread, which takes it before its next step: no lock to
        # wait for, so a trajectory received before its stamp starts on time.
        self._inbox.append(parsed)
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

    # ------------------------------------------------------------------ the action
    def _on_goal(self, goal: Any) -> Any:
        from rclpy.action.server import GoalResponse

        parsed = self._parse(goal.trajectory)
        if isinstance(parsed, str):
            why = parsed
        elif parsed[4] > 0 and parsed[4] + parsed[0][-1] < self._seen[0]:
            why = "its trajectory ended in the past"
        else:
            return GoalResponse.ACCEPT
        self.get_logger().warning(f"rejected goal: {why}")
        self._accepted += 1  # received all the same: a lockstep grant must not wait for it
        return GoalResponse.REJECT

    def _on_accepted(self, handle: Any) -> None:
        """Preempt the running goal and schedule the new one's trajectory (executor thread).

        The goal is not executed here: the goal thread watches it and executes it only to
        end it (:meth:`_finish`), so that no callback of the one executor thread waits for
        a motion.
        """
        goal = handle.request
        parsed = self._parse(goal.trajectory)
        assert not isinstance(parsed, str)  # validated by _on_goal
        times, pos, vel, acc, stamp = parsed
        begin = stamp if stamp > 0 else self._seen[0]
        tolerances = tolerances_of(
            self.cfg.joint_names,
            [(t.name, t.position) for t in goal.path_tolerance],
            [(t.name, t.position) for t in goal.goal_tolerance],
            duration_s(goal.goal_time_tolerance),
        )
        monitor = GoalMonitor(self.cfg.joint_names, begin + times[-1], pos[-1], tolerances)
        served = _Served(handle, monitor)
        with self._goal_lock:
            if self._goal is not None:
                self._goal.preempted = True
            self._goal = served
            self._goals.append(served)
        self._inbox.append((times, pos, vel, acc, stamp))
        self._accepted += 1  # after the hand-over: a grant never outruns its trajectories
        self._goal_wake.set()

    def _watch_goals(self) -> None:
        """The goal thread: feedback at ``feedback_rate``, and the end of every goal."""
        action: Any = self.action
        names = list(self.cfg.joint_names)
        period = 1.0 / self.cfg.feedback_rate
        while not self._stop.is_set():
            with self._goal_lock:
                goals = list(self._goals)
            now, q, qdot, ref = self._seen
            for served in goals:
                handle = served.handle
                if served.preempted:
                    self.get_logger().info("goal preempted by a newer goal")
                    self._finish(served, "abort", INVALID_GOAL, PREEMPTED)
                    continue
                if handle.is_cancel_requested:
                    self.get_logger().info("goal canceled: holding the measured position")
                    self._finish(served, "canceled", 0, "", hold=True)
                    continue
                feedback = action.Feedback(joint_names=names)
                feedback.header.stamp = _stamp(now)
                feedback.desired = JointTrajectoryPoint(
                    positions=ref[0].tolist(),
                    velocities=ref[1].tolist(),
                    accelerations=ref[2].tolist(),
                )
                feedback.actual = JointTrajectoryPoint(
                    positions=q.tolist(), velocities=qdot.tolist()
                )
                feedback.error = JointTrajectoryPoint(
                    positions=(ref[0] - q).tolist(), velocities=(ref[1] - qdot).tolist()
                )
                handle.publish_feedback(feedback)
                end = served.monitor.check(now, ref[0], q)
                if end is None:
                    continue
                if end.status == "succeeded":
                    self._finish(served, "succeed", end.error_code, end.error_string)
                else:
                    self.get_logger().warning(f"goal aborted: {end.error_string}")
                    self._finish(served, "abort", end.error_code, end.error_string, hold=True)
            self._goal_wake.wait(period)
            self._goal_wake.clear()

    def _finish(self, served: _Served, how: str, code: int, text: str, hold: bool = False) -> None:
        """End a goal: forget it, hold the arm if asked, and execute it to its terminal state.

        Args:
            served: The goal.
            how: ``succeed``, ``abort`` or ``canceled`` (the goal handle's method).
            code: The result's error code.
            text: The result's error string.
            hold: Stop at the measured position at once (as joint_trajectory_controller's
                ``set_hold_position()``) unless a newer goal runs.
        """
        with self._goal_lock:
            self._goals.remove(served)
            newest = self._goal is served
            if newest:
                self._goal = None
        if hold and newest:
            q = self._seen[1]
            self._inbox.append(([self.twin.dt], q[None, :].copy(), None, None, 0.0))
        result = self.action.Result(error_code=code, error_string=text)  # type: ignore[union-attr]

        def terminal(handle: Any) -> Any:  # runs on the executor thread, at once
            getattr(handle, how)()
            return result

        served.handle.execute(terminal)

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
            self._traj_sim = self.twin.time
            if self.twin.controller_model == "jtc":  # when (the tests read it) and how
                step = np.max(np.abs(self.twin.takeover_step), axis=1)
                self.get_logger().info(
                    f"trajectory taken over at {self.twin.time:.4f} s: {len(times)} points,"
                    f" stamp {stamp:.4f} s; the reference changed by {step[0]:.1e},"
                    f" {step[1]:.1e}/s, {step[2]:.1e}/s²"
                )
                if step[0] > TAKEOVER_JUMP:
                    self.get_logger().warning(
                        f"a trajectory taken over moved the reference by {step[0]:.4f}: it"
                        " arrived past its first point, off the running curve"
                    )
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
        next_js = next_clock = wall0
        next_cam = self.twin.time  # the camera runs on simulated time (a 60 Hz camera)
        max_steps = max(1, round(MAX_LAG_S * cfg.time_scale / dt))
        granted = 0.0
        limited = 0
        next_image = self.twin.time
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
                if self.twin.time >= next_cam - 1e-9:
                    next_cam += 1.0 / cfg.camera_rate
                    self._capture()
                if self.image_pub is not None and self.twin.time >= next_image - 1e-9:
                    next_image = max(next_image + 1.0 / cfg.image_rate, self.twin.time)
                    self._publish_image()
                    # One frame per turn: joint states and /clock go out between frames
                    # (a batch of frames at time_scale 10 starved them for 0.5 s).
                    break
            if self.twin.limited > limited:
                self.get_logger().error(
                    f"drive limited: a commanded motion exceeded the arm's limits for"
                    f" {self.twin.limited - limited} steps; held to the limits",
                    throttle_duration_sec=1.0,
                )
                limited = self.twin.limited
            q, qdot = self.twin.joint_state()
            self._seen = (self.twin.time, q, qdot, self.twin.reference_state())
            # Every stamp is simulated time, published on /clock (use_sim_time elsewhere).
            stamp = _stamp(self.twin.time)
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
            while self._pending and self._pending[0][0] <= self.twin.time + 1e-9:
                _, st, p = self._pending.popleft()
                msg = PointStamped(point=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])))
                msg.header.stamp = st
                msg.header.frame_id = cfg.frame_id
                self.ball_pub.publish(msg)
            self._stop.wait(TICK_S)
        self.twin.close()  # the renderer's GL context belongs to this thread

    def _publish_image(self) -> None:
        """Render the camera and publish the image and its CameraInfo (physics thread).

        The camera obeys ``camera_dropout`` and ``camera_fail_after`` like the ball
        points (``camera_latency`` and ``camera_noise`` are the tracker's to meet).
        """
        cfg = self.cfg
        taken = self._traj_sim
        if cfg.camera_fail_after >= 0 and taken is not None:
            if self.twin.time - taken > cfg.camera_fail_after:
                return
        if self.rng.random() < cfg.camera_dropout:
            return
        rgb = self.twin.render()
        stamp = _stamp(self.twin.time)
        img = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=3 * rgb.shape[1])
        img.data = rgb.tobytes()
        img.header.stamp = stamp
        img.header.frame_id = cfg.camera_frame_id
        self._info.header.stamp = stamp
        assert self.image_pub is not None and self.info_pub is not None
        self.info_pub.publish(self._info)
        self.image_pub.publish(img)

    def _capture(self) -> None:
        """One camera frame at the current simulated time (physics thread)."""
        cfg = self.cfg
        now = self.twin.time
        ball = self.twin.object_xyz()
        if self.image_pub is not None:  # ground truth beside the images: exact, at once
            self._pending.append((now, _stamp(now), ball))
            return
        taken = self._traj_sim
        if cfg.camera_fail_after >= 0 and taken is not None and now - taken > cfg.camera_fail_after:
            return
        if self.rng.random() < cfg.camera_dropout:
            return
        if cfg.camera_noise > 0:
            ball[:2] += self.rng.normal(0.0, cfg.camera_noise, size=2)
        self._pending.append((now + cfg.camera_latency, _stamp(now), ball))

    def close(self) -> None:
        """Stop the physics thread and end the running goal (called before ``destroy_node``)."""
        self._stop.set()
        self._goal_wake.set()
        for thread in (self._thread, self._goal_thread):
            if thread.is_alive():
                thread.join(timeout=2.0)
        if self.action_server is not None:
            self.action_server.destroy()


def _stamp(seconds: float) -> Time:
    """A ``builtin_interfaces/Time`` of simulated seconds."""
    ns = round(seconds * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


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
