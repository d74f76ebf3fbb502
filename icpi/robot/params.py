"""Node parameters as typed dataclasses: one source of truth for the nodes, YAML and docs.

Every field is a ROS parameter of the same name, declared with a descriptor that carries
its description (and range where it has one) by :func:`declare_config`. The shipped
``launch/params/*.yaml`` files set them; ``robot/README.md`` lists them. rclpy is imported
only inside :func:`declare_config`.
"""

# ruff: noqa: RUF009  (_p returns a dataclasses.field, which ruff cannot see)
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from icpi.robot.camera import CameraSetup, MarkerSetup, camera_setup_from
from icpi.robot.skill import ArmModel, Kinematics, Limits, TrialTiming
from icpi.robot.track import RestRule

if TYPE_CHECKING:
    from icpi.robot.tracker import TrackerSettings

T = TypeVar("T")

# Default arm: planar 2R, base 0.5 m behind the ball, 0.4 m links, home at (−0.25, 0) m.
DEFAULT_HOME = (-1.25297262, 2.50594525)  # [rad]


@functools.lru_cache(maxsize=8)
def _serial_arm(
    model: str,
    joints: tuple[str, ...],
    base_pose: tuple[float, ...],
    home: tuple[float, ...],
    height: float,
    effector: str,
) -> Kinematics:
    """A serial arm, built once per configuration (loading and IK set-up take ~10 ms)."""
    from icpi.robot.kinematics import SerialArm

    return SerialArm(model, joints, base_pose, home, height, effector)


def _p(default: Any, help: str, lo: float | None = None, hi: float | None = None) -> Any:
    meta: dict[str, Any] = {"help": help}
    if lo is not None and hi is not None:
        meta["range"] = (lo, hi)
    if isinstance(default, list):
        value = list(default)
        return field(default_factory=lambda: list(value), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ArmConfig:
    """Kinematics and home pose, shared by the skill node and the simulated arm."""

    joint_names: list[str] = _p(["shoulder", "elbow"], "Joint names, in the arm model's order")
    kinematics: str = _p("planar_2r", "Arm model: planar_2r, cartesian_xy or serial (model)")
    base_xy: list[float] = _p([-0.5, 0.0], "Arm base in the task frame [m] (planar models)")
    link_lengths: list[float] = _p([0.4, 0.4], "Upper arm and forearm length [m] (planar_2r)")
    elbow: int = _p(1, "Inverse-kinematics branch (+1 or -1)", -1, 1)
    home: list[float] = _p(list(DEFAULT_HOME), "Home joint positions [rad or m]")
    model: str = _p("", "serial: arm model, a shipped name (ur5e, panda) or an MJCF/URDF file")
    base_pose: list[float] = _p(
        [-0.6, 0.0, 0.0, 0.0], "serial: base x, y, z [m] and yaw [rad] in the task frame"
    )
    effector: str = _p("effector", "serial: site (MJCF) or body (URDF) of the effector point")
    effector_height: float = _p(
        0.03, "serial: effector height over the table along strokes [m]", -1.0, 2.0
    )
    controller_model: str = _p(
        "stamp",
        "How the controller takes a new trajectory over: stamp (at its header stamp, from"
        " the desired state) or jtc (ros2_controllers joint_trajectory_controller: on"
        " arrival, from the measured state)",
    )
    lockstep: bool = _p(
        False,
        "Simulation: the twin advances its clock only as far as the arm node grants"
        " (deterministic timing on any machine); set the same in both nodes",
    )
    grant_topic: str = _p(
        "icpi/clock_grant", "std_msgs/Float64MultiArray [granted time s, trajectories sent]"
    )

    def arm(self) -> Kinematics:
        """The arm model.

        Returns:
            An :class:`~icpi.robot.skill.ArmModel` (planar models) or a
            :class:`~icpi.robot.kinematics.SerialArm` (``kinematics: serial``).

        Raises:
            ValueError: On malformed values.
            FileNotFoundError: If the serial arm's model file does not exist.
        """
        if len(self.home) != len(self.joint_names):
            raise ValueError(f"home needs {len(self.joint_names)} values (one per joint)")
        if self.kinematics == "serial":
            return _serial_arm(
                self.model,
                tuple(self.joint_names),
                tuple(self.base_pose),
                tuple(self.home),
                self.effector_height,
                self.effector,
            )
        if len(self.base_xy) != 2 or len(self.link_lengths) != 2:
            raise ValueError("base_xy and link_lengths need 2 values each")
        if len(self.joint_names) != 2 or len(self.home) != 2:
            raise ValueError("joint_names and home need 2 values each (2-joint arm model)")
        return ArmModel(
            kinematics=self.kinematics,
            base_xy=(float(self.base_xy[0]), float(self.base_xy[1])),
            link_lengths=(float(self.link_lengths[0]), float(self.link_lengths[1])),
            elbow=int(self.elbow),
        )


@dataclass
class SkillNodeConfig(ArmConfig):
    """Parameters of ``icpi-arm-node`` (the skill node)."""

    skill: str = _p("ball-roll-gc", "Skill: ball-roll-gc, slide or slide-gc")
    position_lower: list[float] = _p([-2.5, 0.1], "Lower joint position limits [rad or m]")
    position_upper: list[float] = _p([1.0, 2.8], "Upper joint position limits [rad or m]")
    velocity_limits: list[float] = _p([15.0, 15.0], "Joint speed limits [rad/s or m/s]")
    acceleration_limits: list[float] = _p(
        [300.0, 300.0], "Joint acceleration limits [rad/s² or m/s²]"
    )
    jerk_limits: list[float] = _p([30000.0, 30000.0], "Joint jerk limits [rad/s³ or m/s³]")
    workspace: list[float] = _p(
        [-0.35, 0.35, -0.3, 0.3], "Effector box x_min, x_max, y_min, y_max in the task frame [m]"
    )
    min_height: float = _p(
        -1.0, "Lowest effector height over the table [m] (serial arms; planar: z = 0)", -1.0, 2.0
    )
    trust_region: list[float] = _p(
        [0.3, 0.05, 0.19], "Largest |Δθ| per parameter between trials (θ units; 0: unbounded)"
    )
    sample_dt: float = _p(0.01, "Spacing of trajectory points [s]", 0.001, 0.1)
    approach_duration: float = _p(1.0, "Home to stroke start [s]", 0.05, 10.0)
    dwell: float = _p(0.2, "Rest before the stroke [s]", 0.0, 5.0)
    hold: float = _p(0.2, "Rest after the stroke [s]", 0.0, 5.0)
    return_duration: float = _p(1.0, "Back home after a trial [s]", 0.05, 10.0)
    trajectory_lead: float = _p(
        0.3,
        "Trials and moves home start this long after they are sent (header stamp) [wall s]",
        0.0,
        5.0,
    )
    stop_lead: float = _p(
        0.1, "Stops start this long after they are sent (header stamp) [wall s]", 0.0, 1.0
    )
    position_tolerance: float = _p(
        0.02, "Joint error under which a target (home, stroke end) counts as reached", 1e-4, 1.0
    )
    joint_state_timeout: float = _p(
        0.5, "Watchdog: largest joint-state age, header stamp to the node's clock [s]", 0.01, 10.0
    )
    ball_timeout: float = _p(
        1.0, "Watchdog: largest ball-point age, header stamp to the node's clock [s]", 0.01, 10.0
    )
    motion_timeout: float = _p(
        5.0, "Extra time beyond a trajectory's duration to reach its end [s]", 0.1, 60.0
    )
    settle_timeout: float = _p(10.0, "Longest wait for the ball to rest [s]", 0.1, 120.0)
    rest_window: float = _p(0.3, "Rest detection window [s]", 0.01, 5.0)
    rest_radius: float = _p(0.003, "Rest: every window point within this of the mean [m]", 0.0, 0.1)
    rest_min_points: int = _p(5, "Rest: fewest points in the window", 2, 1000)
    ball_box: list[float] = _p(
        [-1.0, 2.0, -1.0, 1.0], "Plausible ball points x_min, x_max, y_min, y_max [m]"
    )
    joint_state_margin: float = _p(
        0.5, "Joint states beyond the position limits by more than this are ignored", 0.0, 10.0
    )
    trajectory_transport: str = _p(
        "auto",
        "Trajectories to the controller: action, topic, or auto (the action where"
        " control_msgs is built, else the topic)",
    )
    trajectory_action: str = _p(
        "arm_controller/follow_joint_trajectory",
        "control_msgs/FollowJointTrajectory action of the controller (transport action)",
    )
    path_tolerance: float = _p(
        0.0,
        "Action goals: largest joint error from the desired path [rad or m] (0: the"
        " controller's default)",
        0.0,
        10.0,
    )
    feedback_timeout: float = _p(
        0.5,
        "Action: longest silence of the controller (answer, feedback) while a goal runs [s]",
        0.01,
        10.0,
    )
    task_frame: str = _p("task", "frame_id of the ball points; points in any other are refused")
    min_ball_travel: float = _p(
        0.005, "Rest closer than this to the ball's start [m]: the trial ends no_motion", 0.0, 1.0
    )
    speed_scaling_topic: str = _p(
        "",
        "std_msgs/Float64 in: the arm's speed scaling (UR:"
        " /speed_scaling_state_broadcaster/speed_scaling); below full, trials are refused"
        " or aborted ('': not read)",
    )
    speed_scaling_full: float = _p(
        100.0, "The speed scaling value of full speed (UR publishes percent)", 1e-6, 1e6
    )
    program_running_topic: str = _p(
        "",
        "std_msgs/Bool in, transient local: false refuses or aborts trials (UR:"
        " /io_and_status_controller/robot_program_running; '': not read)",
    )
    robot_mode_topic: str = _p(
        "",
        "ur_dashboard_msgs/RobotMode in, transient local: anything but RUNNING refuses or"
        " aborts trials (UR: /io_and_status_controller/robot_mode; '': not read; needs the"
        " type: make ros-types)",
    )
    safety_mode_topic: str = _p(
        "",
        "ur_dashboard_msgs/SafetyMode in, transient local: anything but NORMAL (a protective"
        " stop, reduced mode) refuses or aborts trials (UR:"
        " /io_and_status_controller/safety_mode; '': not read)",
    )
    franka_state_topic: str = _p(
        "",
        "franka_msgs/FrankaRobotState in: a robot_mode but MOVE (a reflex, a user stop)"
        " refuses or aborts trials (/franka_robot_state_broadcaster/robot_state; '': not"
        " read)",
    )
    joint_state_topic: str = _p("joint_states", "sensor_msgs/JointState in")
    trajectory_topic: str = _p(
        "arm_controller/joint_trajectory",
        "trajectory_msgs/JointTrajectory out (controller, transport topic)",
    )
    sent_trajectory_topic: str = _p(
        "icpi/sent_trajectory",
        "trajectory_msgs/JointTrajectory out: a copy of every trajectory sent to the"
        " controller, either transport (bags, tests)",
    )
    ball_topic: str = _p("ball/point", "Ball track in (geometry_msgs PointStamped or PoseStamped)")
    ball_msg_type: str = _p("point", "point (PointStamped) or pose (PoseStamped)")
    request_topic: str = _p("icpi/trial_request", "std_msgs/Float64MultiArray trial requests in")
    result_topic: str = _p("icpi/trial_result", "std_msgs/String (JSON) trial results out")
    estop_topic: str = _p("icpi/estop", "std_msgs/Bool in: true engages the e-stop")
    state_topic: str = _p("icpi/arm_state", "std_msgs/String out: the arm node's state")

    def limits(self) -> Limits:
        """The safety limits.

        Returns:
            The :class:`~icpi.robot.skill.Limits`.

        Raises:
            ValueError: On malformed values.
        """
        n = len(self.joint_names)
        names = (
            "position_lower",
            "position_upper",
            "velocity_limits",
            "acceleration_limits",
            "jerk_limits",
        )
        for name in names:
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs {n} values (one per joint)")
        for name in names[2:]:
            if min(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive")
        if len(self.workspace) != 4 or len(self.ball_box) != 4:
            raise ValueError("workspace and ball_box need 4 values: x_min, x_max, y_min, y_max")
        w = self.workspace
        return Limits(
            position_lower=tuple(self.position_lower),
            position_upper=tuple(self.position_upper),
            velocity=tuple(self.velocity_limits),
            acceleration=tuple(self.acceleration_limits),
            jerk=tuple(self.jerk_limits),
            workspace=(w[0], w[1], w[2], w[3]),
            min_height=self.min_height,
        )

    def timing(self) -> TrialTiming:
        """The trajectory timing."""
        return TrialTiming(
            sample_dt=self.sample_dt,
            approach_duration=self.approach_duration,
            dwell=self.dwell,
            hold=self.hold,
            return_duration=self.return_duration,
        )

    def rest_rule(self) -> RestRule:
        """The rest rule."""
        return RestRule(self.rest_window, self.rest_radius, self.rest_min_points)


@dataclass
class SimArmConfig(ArmConfig):
    """Parameters of ``icpi-sim-arm-node`` (the MuJoCo twin)."""

    skill: str = _p("ball-roll-gc", "Twin task: ball-roll-gc, slide or slide-gc")
    physics: list[float] = _p(
        [0.065, 0.0035], "Hidden physics in sorted name order (ball_mass, rolling_friction)"
    )
    time_scale: float = _p(1.0, "Simulated seconds per wall second", 0.01, 100.0)
    joint_state_rate: float = _p(100.0, "Joint state rate [Hz]", 1.0, 1000.0)
    camera_rate: float = _p(60.0, "Ball point rate [Hz of simulated time]", 1.0, 1000.0)
    camera_latency: float = _p(0.0, "Delay of each ball point [simulated s]", 0.0, 5.0)
    camera_noise: float = _p(0.0, "Std of the Gaussian noise on ball xy [m]", 0.0, 1.0)
    camera_dropout: float = _p(0.0, "Probability that a ball point is dropped", 0.0, 1.0)
    camera_fail_after: float = _p(
        -1.0,
        "Camera goes silent this long after each trajectory arrives [simulated s] (<0: never)",
        -1.0,
        1e6,
    )
    seed: int = _p(0, "Seed of the camera noise and drop-outs", 0, 2**31 - 1)
    velocity_limits: list[float] = _p(
        [15.0, 15.0], "The drive's joint speed limits [rad/s or m/s]: never exceeded"
    )
    acceleration_limits: list[float] = _p(
        [300.0, 300.0], "The drive's joint acceleration limits [rad/s² or m/s²]: never exceeded"
    )
    reset_object_at_home: bool = _p(
        True, "Put the ball back on its spot when a trajectory starts at home"
    )
    joint_state_topic: str = _p("joint_states", "sensor_msgs/JointState out")
    trajectory_topic: str = _p("arm_controller/joint_trajectory", "JointTrajectory in")
    trajectory_action: str = _p(
        "arm_controller/follow_joint_trajectory",
        "control_msgs/FollowJointTrajectory served (where control_msgs is built)",
    )
    feedback_rate: float = _p(
        20.0, "Action feedback rate [Hz] (the controller's action_monitor_rate)", 1.0, 1000.0
    )
    ball_topic: str = _p("ball/point", "geometry_msgs/PointStamped out")
    frame_id: str = _p("task", "frame_id of the ball points")
    publish_clock: bool = _p(True, "Publish the simulated time on /clock (for use_sim_time)")
    clock_rate: float = _p(
        100.0, "Rate of /clock [Hz, wall time]: every use_sim_time node handles each", 1.0, 1000.0
    )
    camera: bool = _p(
        False,
        "Render camera images (Image + CameraInfo) of the table and its ArUco marker; the"
        " ball's true position then goes to ground_truth_topic only (the arm sees it"
        " through icpi-tracker-node)",
    )
    image_rate: float = _p(30.0, "Camera images per simulated second [Hz]", 1.0, 240.0)
    camera_pose: list[float] = _p(
        [0.45, -0.5, 1.25, 0.45, 0.0, 0.0],
        "Camera position x, y, z and the point it looks at x, y, z, task frame [m]",
    )
    camera_fovy: float = _p(50.0, "Camera vertical field of view [deg]", 1.0, 170.0)
    camera_size: list[int] = _p([320, 240], "Camera image width, height [px]")
    camera_frame_id: str = _p("camera_optical_frame", "frame_id of the images")
    image_topic: str = _p("camera/image_raw", "sensor_msgs/Image out (rgb8)")
    camera_info_topic: str = _p("camera/camera_info", "sensor_msgs/CameraInfo out")
    ground_truth_topic: str = _p(
        "ball/ground_truth", "With camera: the ball's true position (PointStamped) out"
    )
    marker_dictionary: str = _p("DICT_4X4_50", "ArUco dictionary of the marker on the table")
    marker_id: int = _p(0, "ArUco marker id", 0, 1000)
    marker_size: float = _p(0.2, "Side of the marker's black square [m]", 0.01, 2.0)
    marker_center: list[float] = _p([0.25, 0.3], "Marker centre x, y in the task frame [m]")
    marker_yaw: float = _p(0.0, "Marker yaw [rad] (0: its top edge towards +y)", -7.0, 7.0)

    def camera_setup(self) -> CameraSetup | None:
        """The twin's :class:`~icpi.robot.camera.CameraSetup` (``None`` without a camera).

        Raises:
            ValueError: On malformed values.
        """
        if not self.camera:
            return None
        return camera_setup_from(self.camera_pose, self.camera_fovy, self.camera_size)

    def marker_setup(self) -> MarkerSetup:
        """The :class:`~icpi.robot.camera.MarkerSetup` on the twin's table.

        Raises:
            ValueError: On malformed values.
        """
        if len(self.marker_center) != 2:
            raise ValueError("marker_center needs x, y")
        c = self.marker_center
        return MarkerSetup(
            self.marker_dictionary, self.marker_id, self.marker_size, (c[0], c[1]), self.marker_yaw
        )


@dataclass
class DriverConfig:
    """Parameters of ``icpi-driver-node`` (runs an improvement method against the arm).

    What to run is not listed here: it is the same typed configuration as ``icpi run``'s,
    read from the nested parameters ``run.*`` (:class:`~icpi.manipulation.config.RunConfig`
    and the method's settings, e.g. ``run.method``, ``run.settings.k``) and ``llm.*``
    (:class:`~icpi.llm.config.LLMConfig`, e.g. ``llm.base_url``, ``llm.sampling.temperature``)
    by :func:`declare_layer` and validated by the same loader. The API key comes only from
    ``OPENAI_API_KEY`` (parameters can be read by anyone on the graph).
    """

    goal: list[float] = _p([0.7, 0.0], "Goal in the task frame [m]")
    physics: list[float] = _p(
        [0.065, 0.0035],
        "Nominal hidden physics (sorted names) recorded with the run; unknown on hardware",
    )
    out: str = _p("runs/real_arm", "Run directory (resumed when it holds the same run)")
    sampler: str = _p("llm", "llm (endpoint llm.* or the embedded model) or nearest (no model)")
    trust_region: list[float] = _p(
        [0.3, 0.05, 0.19], "Largest |Δθ| per parameter the driver sends (θ units; 0: unbounded)"
    )
    trial_timeout: float = _p(60.0, "Longest wait for one trial's result [s]", 0.1, 3600.0)
    theta_box: list[float] | None = _p(
        None,
        "The θ the arm executes within its limits: low values, then high values (θ units;"
        " unset: the task's bounds); every θ is clipped into it. Compute it with python -m"
        " icpi.robot.theta_box PARAMS.yaml",
    )
    start_theta: list[float] | None = _p(
        None,
        "First θ, inside theta_box (unset: run.theta0 of theta_box, center: its centre)",
    )
    max_refusals: int = _p(
        3,
        "A refused θ is tried again this often, each time halfway back to the last θ the"
        " arm executed (the start θ before any); then the run stops",
        0,
        20,
    )
    relabel_out: str = _p("", "Save the run's rollouts, hindsight-relabelled, here ('' : off)")
    request_topic: str = _p("icpi/trial_request", "std_msgs/Float64MultiArray out")
    result_topic: str = _p("icpi/trial_result", "std_msgs/String (JSON) in")
    arm_state_topic: str = _p("icpi/arm_state", "std_msgs/String in: the arm node's state")
    progress_topic: str = _p("icpi/progress", "std_msgs/String (JSON) out, one per rollout")
    summary_topic: str = _p("icpi/summary", "std_msgs/String (JSON) out, transient local")
    exit_when_done: bool = _p(True, "Shut the node down when the run ends")
    record_bags: bool = _p(True, "Record every trial's messages into its own bag (MCAP)")
    bag_dir: str = _p("", "Where the trial bags go ('' : <out>/bags)")
    bag_image_rate: float = _p(
        5.0, "Most camera images (and camera infos) per second in a bag (0: none)", 0.0, 1000.0
    )
    joint_state_topic: str = _p("joint_states", "Recorded: sensor_msgs/JointState")
    sent_trajectory_topic: str = _p(
        "icpi/sent_trajectory",
        "Recorded: the arm node's copy of every trajectory it sends (action or topic)",
    )
    ball_topic: str = _p("ball/point", "Recorded: geometry_msgs/PointStamped ball points")
    image_topic: str = _p("camera/image_raw", "Recorded: sensor_msgs/Image ('' : none)")
    camera_info_topic: str = _p("camera/camera_info", "Recorded: sensor_msgs/CameraInfo")

    def bag_topics(self) -> dict[str, str]:
        """Role → topic of everything a trial's bag records (:data:`icpi.robot.bags.ROLES`)."""
        return {
            "request": self.request_topic,
            "result": self.result_topic,
            "arm_state": self.arm_state_topic,
            "trajectory": self.sent_trajectory_topic,
            "joint_states": self.joint_state_topic,
            "ball": self.ball_topic,
            "image": self.image_topic,
            "camera_info": self.camera_info_topic if self.image_topic else "",
        }


def declare_layer(node: Any, prefix: str, names: list[str]) -> dict[str, Any]:
    """Declare ``prefix.<name>`` parameters (any type, unset by default) and read them back.

    Args:
        node: The rclpy node.
        prefix: ``run`` or ``llm``.
        names: Dotted setting names under the prefix (e.g. ``settings.k``).

    Returns:
        The nested mapping of the parameters that were set (an empty string counts as unset),
        for :func:`icpi.config.load`.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    from icpi.config import nest

    flat: dict[str, Any] = {}
    for name in names:
        full = f"{prefix}.{name}"
        desc = ParameterDescriptor(description=f"see {prefix}.{name} in icpi", dynamic_typing=True)
        node.declare_parameter(full, None, desc)
        value = node.get_parameter(full).value
        if value is None or value == "":
            continue
        flat[name] = list(value) if isinstance(value, tuple | list) else value
    return nest(flat)


def refuse_undeclared(node: Any) -> None:
    """Refuse parameters given to a node (``-p``, a params file) that it does not declare.

    rclpy keeps such values and never uses them, so a typo (``iterations`` for
    ``run.iterations``, ``velocity_limit`` for ``velocity_limits``) would silently leave the
    default in force. Call once every parameter is declared.

    Args:
        node: The rclpy node.

    Raises:
        ValueError: Naming every unknown parameter, with the declared name it most likely
            meant.
    """
    import difflib

    given = getattr(node, "_parameter_overrides", {})  # rclpy's: -p and params files
    unknown = sorted(
        n for n in given if not node.has_parameter(n) and not n.startswith("qos_overrides.")
    )
    if not unknown:
        return
    declared = sorted(node._parameters)
    hints = []
    for name in unknown:
        near = [d for d in declared if d.endswith("." + name)]
        near = near or difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
        hints.append(f"{name} (did you mean {near[0]}?)" if near else name)
    raise ValueError(
        f"{node.get_name()} has no parameter {', '.join(hints)}; `ros2 param list` or"
        " robot/README.md lists them"
    )


def config_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The parameter fields of a config class (inherited ones included)."""
    return list(dataclasses.fields(cls))


def declare_config(node: Any, cls: type[T]) -> T:
    """Declare every field of a config class as a parameter and read the values back.

    Args:
        node: The rclpy node.
        cls: A config dataclass of this module.

    Returns:
        The config with the node's values (defaults overridden by YAML / ``-p``).

    Raises:
        ValueError: If the values do not make a valid config.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import ParameterUninitializedException
    from rclpy.parameter import Parameter

    values: dict[str, Any] = {}
    for f in config_fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default
        desc = ParameterDescriptor(description=str(f.metadata.get("help", "")), read_only=True)
        if default is None:  # a float list that is unset unless given
            node.declare_parameter(f.name, Parameter.Type.DOUBLE_ARRAY, desc)
            try:
                values[f.name] = list(node.get_parameter(f.name).value)
            except ParameterUninitializedException:
                values[f.name] = None
            continue
        bounds = f.metadata.get("range")
        if bounds is not None and isinstance(default, bool):
            pass
        elif bounds is not None and isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(bounds[0]), to_value=int(bounds[1]))]
        elif bounds is not None and isinstance(default, float):
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(bounds[0]), to_value=float(bounds[1]))
            ]
        node.declare_parameter(f.name, default, desc)
        value = node.get_parameter(f.name).value
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"parameter {f.name} must be finite")
        values[f.name] = list(value) if isinstance(default, list) else value
    return cls(**values)


@dataclass
class TrackerConfig:
    """Parameters of ``icpi-tracker-node`` (ball points from camera frames).

    The defaults track the twin's orange 60 mm ball; on hardware set ``calibration`` (made
    by ``icpi-calibrate``), the colour range and the ball's radius.
    """

    calibration: str = _p("", "Camera calibration YAML written by icpi-calibrate (required)")
    image_topic: str = _p("camera/image_raw", "sensor_msgs/Image in (rgb8, bgr8, rgba8, bgra8)")
    camera_info_topic: str = _p(
        "camera/camera_info", "sensor_msgs/CameraInfo in: must match the calibration"
    )
    ball_topic: str = _p("ball/point", "geometry_msgs/PointStamped out (task frame, image stamp)")
    hsv_low: list[int] = _p([8, 120, 40], "Lowest ball colour, OpenCV HSV (H 0-179, S, V 0-255)")
    hsv_high: list[int] = _p([30, 255, 255], "Highest ball colour, OpenCV HSV")
    ball_radius: float = _p(0.03, "Ball radius [m] (height of its centre)", 0.001, 0.5)
    size_tolerance: float = _p(
        0.5, "A blob's radius may differ from the expected one by this fraction", 0.05, 5.0
    )
    table_box: list[float] = _p(
        [-0.5, 1.5, -0.6, 0.6], "Ball points beyond x_min, x_max, y_min, y_max [m] are ignored"
    )
    max_speed: float = _p(6.0, "Fastest plausible ball [m/s] (outlier gate)", 0.01, 100.0)
    gate_margin: float = _p(0.02, "Slack of the outlier gate [m]", 0.0, 1.0)
    reacquire_frames: int = _p(3, "Agreeing frames that take a ball off the track", 1, 100)
    lost_after: float = _p(0.5, "A track silent this long starts afresh [s]", 0.01, 60.0)
    max_rate: float = _p(120.0, "Frames faster than this are skipped [Hz] (floods)", 1.0, 10000.0)
    image_timeout: float = _p(1.0, "Warn when no image came for this long [s, wall]", 0.01, 60.0)

    def settings(self) -> TrackerSettings:
        """The tracker's :class:`~icpi.robot.tracker.TrackerSettings`.

        Raises:
            ValueError: On malformed values.
        """
        from icpi.robot.tracker import TrackerSettings

        if len(self.hsv_low) != 3 or len(self.hsv_high) != 3 or len(self.table_box) != 4:
            raise ValueError("hsv_low and hsv_high need 3 values, table_box 4")
        return TrackerSettings(
            hsv_low=(self.hsv_low[0], self.hsv_low[1], self.hsv_low[2]),
            hsv_high=(self.hsv_high[0], self.hsv_high[1], self.hsv_high[2]),
            ball_radius=self.ball_radius,
            size_tolerance=self.size_tolerance,
            table_box=(self.table_box[0], self.table_box[1], self.table_box[2], self.table_box[3]),
            max_speed=self.max_speed,
            gate_margin=self.gate_margin,
            reacquire_frames=self.reacquire_frames,
            lost_after=self.lost_after,
            max_rate=self.max_rate,
        )
