"""``icpi-arm-node``: the arm skill node (a thin rclpy adapter around :class:`SkillRunner`).

Subscribes: ``joint_state_topic`` (sensor_msgs/JointState), ``ball_topic``
(geometry_msgs/PointStamped or PoseStamped), ``request_topic`` (std_msgs/Float64MultiArray,
see :mod:`icpi.robot.contract`), ``estop_topic`` (std_msgs/Bool, true engages).
Sends trajectories to the controller through ``trajectory_action``
(control_msgs/FollowJointTrajectory) or on ``trajectory_topic``
(trajectory_msgs/JointTrajectory), as ``trajectory_transport`` says
(:mod:`icpi.robot.controller_link`), and a copy of each on ``sent_trajectory_topic``.
Publishes: ``result_topic`` (std_msgs/String JSON), ``state_topic`` (std_msgs/String,
transient local, on change: ``idle``, ``busy``, ``estopped``, ``no_joint_states``,
``no_camera``, ``no_controller`` or ``arm_fault``: the arm's driver reports a protective
stop, a reflex, a stopped program or reduced speed, and the reason is logged).
Services: ``~/estop``, ``~/clear_estop`` (std_srvs/Trigger). With ``lockstep`` (simulation)
it publishes ``grant_topic`` (std_msgs/Float64MultiArray ``[granted time s, trajectories
sent]``, see :meth:`SkillRunner.grant`) every 10 ms.

Trials run on a worker thread, one at a time; a request while one runs is answered
``busy``. Malformed or out-of-range messages are logged (throttled) and ignored.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.clock import Clock, ClockType  # type: ignore[attr-defined]
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from icpi.robot.contract import ContractError, TrialRequest, TrialResult
from icpi.robot.controller_link import make_link
from icpi.robot.params import SkillNodeConfig, declare_config, refuse_undeclared
from icpi.robot.ros_common import WarnThrottle, run_node, time_msg, time_s, trajectory_msg
from icpi.robot.runner import SkillRunner
from icpi.robot.skill import Plan

log = logging.getLogger(__name__)

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Requests and results: nothing dropped under a flood, so every request gets an answer.
EVERY = QoSProfile(
    history=HistoryPolicy.KEEP_ALL, depth=1000, reliability=ReliabilityPolicy.RELIABLE
)
# Period of the clock grants to a twin in lockstep [wall s].
GRANT_PERIOD_S = 0.01
# Longest silence of the log about ignored messages of one source [s].
WARN_PERIOD_S = 1.0
# Shortest interval between two decoded Franka robot states [s].
FRANKA_DECODE_S = 0.02
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class _Decimated:
    """Decodes a raw message at most once per ``period`` (steady clock); else ``None``."""

    def __init__(self, msg_type: Any, period: float) -> None:
        self.msg_type = msg_type
        self.period = period
        self._next = 0.0

    def __call__(self, raw: bytes) -> Any:
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self.period
        return deserialize_message(raw, self.msg_type)


class ArmSkillNode(Node):
    """The skill node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare the parameters, build the runner, wire the topics and services.

        Args:
            **kwargs: Passed to :class:`rclpy.node.Node`.

        Raises:
            ValueError: On invalid parameters.
        """
        super().__init__("icpi_arm", **kwargs)
        self.cfg = declare_config(self, SkillNodeConfig)
        refuse_undeclared(self)
        cfg = self.cfg
        if cfg.ball_msg_type not in ("point", "pose"):
            raise ValueError(f"ball_msg_type must be point or pose, got {cfg.ball_msg_type!r}")
        self._warn = WarnThrottle(self, WARN_PERIOD_S)
        self.link = make_link(self, cfg)
        self.sent_pub = self.create_publisher(JointTrajectory, cfg.sent_trajectory_topic, RELIABLE)
        self.result_pub = self.create_publisher(String, cfg.result_topic, EVERY)
        self.state_pub = self.create_publisher(String, cfg.state_topic, LATCHED)
        # Trajectories run on the controller's clock: the node's ROS clock (the twin's
        # simulated time under use_sim_time); the watchdog and timeouts stay on wall time.
        self.runner = SkillRunner(
            cfg,
            self._send,
            controller_clock=self._ros_now,
            controller_fault=self.link.fault if self.link.transport == "action" else None,
        )
        # One executor thread (ros_common.run_node) serves every ready input once per wait:
        # a flood on one (a camera spewing NaN, a storm of requests) cannot starve the joint
        # states or the e-stop; every callback only hands over (trials run on the worker).
        self.create_subscription(
            JointState, cfg.joint_state_topic, self._on_joint_state, qos_profile_sensor_data
        )
        ball_type = PointStamped if cfg.ball_msg_type == "point" else PoseStamped
        self.create_subscription(ball_type, cfg.ball_topic, self._on_ball, qos_profile_sensor_data)
        self.create_subscription(Float64MultiArray, cfg.request_topic, self._on_request, EVERY)
        self.create_subscription(Bool, cfg.estop_topic, self._on_estop, 10)
        # The arm's driver, where it publishes these with standard types (robot/README.md).
        if cfg.speed_scaling_topic:
            self.create_subscription(
                Float64,
                cfg.speed_scaling_topic,
                lambda m: self.runner.on_speed_scaling(m.data),
                RELIABLE,
            )
        if cfg.program_running_topic:
            self.create_subscription(
                Bool,
                cfg.program_running_topic,
                lambda m: self.runner.on_program_running(m.data),
                LATCHED,
            )
        self._driver_modes()
        self.create_service(Trigger, "~/estop", self._srv_estop)
        self.create_service(Trigger, "~/clear_estop", self._srv_clear)
        self._jobs: queue.Queue[TrialRequest | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="icpi-arm-trials", daemon=True)
        self._worker.start()
        self._state = ""
        self._fault: str | None = None  # the arm_fault reason last logged
        self._state_lock = threading.Lock()
        self._publish_state()
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # ticks even if /clock stops
        self.create_timer(0.2, self._publish_state, clock=steady)
        if cfg.lockstep:  # simulation: the twin's clock advances as far as granted
            self.grant_pub = self.create_publisher(Float64MultiArray, cfg.grant_topic, RELIABLE)
            self.create_timer(GRANT_PERIOD_S, self._grant, clock=steady)
        self.get_logger().info(
            f"arm skill node ready: skill {cfg.skill}, joints {cfg.joint_names},"
            f" requests on {cfg.request_topic}, trajectories through the"
            f" {self.link.transport} {self.link.where}"
        )

    def _driver_modes(self) -> None:
        """Subscribe the modes the arm's driver publishes, where configured (UR, Franka).

        Raises:
            ValueError: If a topic is set but its type is not built (``make ros-types``).
        """
        cfg = self.cfg
        for field, module, name in (
            ("robot_mode_topic", "ur_dashboard_msgs.msg", "RobotMode"),
            ("safety_mode_topic", "ur_dashboard_msgs.msg", "SafetyMode"),
            ("franka_state_topic", "franka_msgs.msg", "FrankaRobotState"),
        ):
            topic = getattr(cfg, field)
            if not topic:
                continue
            try:
                msg_type = getattr(importlib.import_module(module), name)
            except ImportError as err:
                package = module.split(".")[0]
                raise ValueError(
                    f"{field} is set ({topic}) but {package} is not built into this"
                    " environment: run `make ros-types` (vendor/build_ros_types.sh) or use a"
                    f" ROS 2 installation with {package}"
                ) from err
            if field == "franka_state_topic":
                # Every control cycle (1 kHz) and large: taken raw, decoded at most every
                # FRANKA_DECODE_S (a reflex lasts far longer).
                decode = _Decimated(msg_type, FRANKA_DECODE_S)

                def on_franka(raw: bytes, decode: _Decimated = decode) -> None:
                    try:
                        msg = decode(raw)
                    except Exception as err:  # another franka_msgs layout, a torn message
                        self._warn("franka robot state", f"does not decode: {err}")
                        return
                    if msg is not None:
                        self.runner.on_mode("franka_state_topic", msg.robot_mode)

                self.create_subscription(msg_type, topic, on_franka, RELIABLE, raw=True)
            else:
                self.create_subscription(
                    msg_type,
                    topic,
                    lambda m, field=field: self.runner.on_mode(field, m.mode),
                    LATCHED,
                )

    def _grant(self) -> None:
        until, sent = self.runner.grant()
        self.grant_pub.publish(Float64MultiArray(data=[until, float(sent)]))

    def _ros_now(self) -> float:
        return float(self.get_clock().now().nanoseconds) * 1e-9

    # ------------------------------------------------------------------ outputs
    def _send(self, plan: Plan, start: Callable[[], float]) -> float:
        msg = trajectory_msg(plan, self.cfg.joint_names)
        stamp = start()  # after building the message: the lead covers only the transport
        msg.header.stamp = time_msg(stamp)
        self.link.send(msg)
        self.sent_pub.publish(msg)
        return stamp

    def _estop(self, reason: str) -> None:
        """Engage the e-stop: a moving goal is preempted by a stop, one at rest cancelled."""
        if self.runner.engage_estop(reason) == "at_rest":
            self.link.cancel()  # never a moving goal: the controller would hold at once
        self._publish_state()

    def _publish_result(self, result: TrialResult) -> None:
        self.result_pub.publish(String(data=result.to_json()))

    def _publish_state(self) -> None:
        with self._state_lock:
            state = self.runner.state()
            if state == "idle" and not self.link.ready():
                state = "no_controller"  # no action server (yet): a trial would abort
            fault = self.runner.arm_fault() if state == "arm_fault" else None
            if fault is not None and fault != self._fault:  # each new reason, once
                self.get_logger().warning(f"trials wait: {fault}")
            self._fault = fault
            if state != self._state:
                self._state = state
                self.state_pub.publish(String(data=state))

    # ------------------------------------------------------------------ inputs
    def _on_joint_state(self, msg: JointState) -> None:
        why = self.runner.on_joint_state(
            list(msg.name), list(msg.position), list(msg.velocity), time_s(msg.header.stamp)
        )
        if why:
            self._warn("joint state", why)

    def _on_ball(self, msg: Any) -> None:
        p = msg.point if isinstance(msg, PointStamped) else msg.pose.position
        why = self.runner.on_ball((p.x, p.y, p.z), time_s(msg.header.stamp), msg.header.frame_id)
        if why:
            self._warn("ball point", why)

    def _on_request(self, msg: Float64MultiArray) -> None:
        try:
            req = TrialRequest.decode(msg.data, self.runner.spec.dim, self.runner.goal_dim)
        except (ContractError, TypeError, ValueError) as err:
            self._warn("trial request", f"malformed: {err}")
            data = list(msg.data)
            tid = data[0] if data else 0.0
            ok_id = tid == tid and 0 < tid < 2**53 and tid == int(tid)
            self._publish_result(TrialResult(int(tid) if ok_id else 0, "malformed", str(err)))
            return
        if self.runner.estopped:
            self._publish_result(TrialResult(req.trial_id, "estopped", "e-stop engaged"))
            return
        if not self.runner.try_reserve():
            self._publish_result(TrialResult(req.trial_id, "busy", "a trial is running"))
            return
        self._jobs.put(req)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self._estop("e-stop topic")

    def _srv_estop(self, request: Any, response: Any) -> Any:
        self._estop("e-stop service")
        response.success = True
        response.message = "e-stop engaged: arm halted, trials refused until cleared"
        return response

    def _srv_clear(self, request: Any, response: Any) -> Any:
        self.runner.clear_estop()
        self._publish_state()
        response.success = True
        response.message = "e-stop cleared; the next trial moves the arm home first"
        return response

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            req = self._jobs.get()
            if req is None:
                return
            self._publish_state()
            result = self.runner.run(req)
            self._publish_result(result)
            self._publish_state()
            self.get_logger().info(
                f"trial {req.trial_id}: {result.status}"
                + (f" cost {result.cost:.4f} m" if result.ok else f" ({result.reason})")
            )

    def close(self) -> None:
        """Stop the worker thread (called before ``destroy_node``)."""
        self._jobs.put(None)
        self._worker.join(timeout=2.0)


def main(args: list[str] | None = None) -> int:
    """Console script ``icpi-arm-node``.

    Args:
        args: Command-line arguments (default ``sys.argv``).

    Returns:
        Exit code.
    """
    return run_node(ArmSkillNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
