"""Helpers of the multi-process ROS tests: private domain, node processes, a probe node."""

from __future__ import annotations

import importlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "launch" / "params" / "sim_arm.yaml"
# One ROS domain per test process (1..100), from the pid; namespaces separate the tests.
DOMAIN = str(1 + os.getpid() % 100)
_ns = itertools.count(1)


def ros_env() -> dict[str, str]:
    env = os.environ.copy()
    env["ROS_DOMAIN_ID"] = DOMAIN
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MUJOCO_GL", "egl")
    return env


def new_namespace() -> str:
    return f"/t{os.getpid()}_{next(_ns)}"


# Deterministic mode of the graph for tests: the twin in lockstep with the arm node (its
# clock never passes a time the arm node has not granted, so no trajectory is ever late)
# and the watchdogs judged on header stamps in simulated time. The watchdog then cannot
# fire on a slow machine: a stamp is at most the grant lead (min(trajectory_lead,
# stop_lead) x time_scale = 0.6 s) plus one publication period (0.04 s) older than the
# arm node's clock, under its timeouts (1.0 s). 4x faster physics, short moves.
LOCKSTEP = {"lockstep": "true"}
FAST_SIM = {**LOCKSTEP, "time_scale": "4.0", "camera_noise": "0.0", "camera_dropout": "0.0"}
FAST_ARM = {
    **LOCKSTEP,
    "approach_duration": "0.5",
    "return_duration": "0.5",
    "dwell": "0.1",
    "trajectory_lead": "0.15",  # wall s (0.6 simulated s at time_scale 4)
    "stop_lead": "0.15",  # wall s
    "joint_state_timeout": "1.0",  # simulated s (see above)
    # The topic: the probe records what the controller receives there (the action's
    # tests, test_robot_action.py, set "action").
    "trajectory_transport": "topic",
}
# Real time (no lockstep): the twin's clock runs on, whatever the arm node does.
REAL_TIME = {"lockstep": "false"}


def start_graph(tmp_path, ns, sim=None, arm=None, driver=None) -> dict:
    """The twin, the arm node and (optionally) the driver, in deterministic mode.

    Args:
        tmp_path: Folder of the node logs.
        ns: Namespace of the graph.
        sim, arm: Parameters over ``FAST_SIM`` / ``FAST_ARM`` (``REAL_TIME`` in both for
            a real-time graph).
        driver: Parameters of the driver node; ``None``: no driver.

    Returns:
        The node processes by name (``sim``, ``arm``, ``driver``); close each.
    """
    procs = {}
    sim_params, arm_params = {**FAST_SIM, **(sim or {})}, {**FAST_ARM, **(arm or {})}
    if sim_params["lockstep"] != arm_params["lockstep"]:
        raise ValueError("lockstep must be the same in the twin and the arm node")
    procs["sim"] = NodeProcess("sim_arm_node", ns, sim_params, tmp_path / "sim.log")
    procs["arm"] = NodeProcess("arm_node", ns, arm_params, tmp_path / "arm.log")
    if driver is not None:
        procs["driver"] = NodeProcess("driver_node", ns, driver, tmp_path / "driver.log")
    return procs


def logs(procs) -> str:
    """The tail of each node's log, for assertion messages."""
    return "\n".join(f"--- {k}\n{p.text()[-3000:]}" for k, p in procs.items())


class NodeProcess:
    """One node in its own process (killed on close)."""

    def __init__(
        self, module: str, ns: str, params: dict[str, str], log: Path, params_file: Path = PARAMS
    ) -> None:
        args = [sys.executable, "-m", f"icpi.robot.{module}", "--ros-args"]
        args += ["--params-file", str(params_file), "-r", f"__ns:={ns}"]
        # /clock is absolute: under the namespace too, so that a graph of another test
        # process that lands on the same ROS_DOMAIN_ID (pid % 100) cannot drive its clock.
        args += ["-r", f"/clock:={ns}/clock"]
        for k, v in params.items():
            args += ["-p", f"{k}:={v}"]
        self.log = log
        self._fh = open(log, "w")
        self.proc = subprocess.Popen(
            args, env=ros_env(), stdout=self._fh, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def text(self) -> str:
        self._fh.flush()
        return self.log.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._fh.close()


FLOOD = """
import math, sys, time, rclpy
from geometry_msgs.msg import PointStamped
rclpy.init()
node = rclpy.create_node("flood", namespace=sys.argv[1])
pub = node.create_publisher(PointStamped, "ball/point", 10)
msg = PointStamped()
msg.header.frame_id = "task"  # in the task frame: refused for its NaN
msg.point.x = math.nan
rate, seconds = float(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic()
k = 0
while time.monotonic() - t0 < seconds:
    pub.publish(msg)
    k += 1
    time.sleep(max(0.0, t0 + k / rate - time.monotonic()))
print(f"published {k}", flush=True)
"""


def flood_ball(ns: str, rate: float, seconds: float, log: Path) -> subprocess.Popen:
    """A separate process that floods the ball topic with NaN points."""
    fh = open(log, "w")
    args = [sys.executable, "-c", FLOOD, ns, str(rate), str(seconds)]
    return subprocess.Popen(args, env=ros_env(), stdout=fh, stderr=subprocess.STDOUT)


class Probe:
    """An in-test rclpy node on its own context: sends requests and e-stops, records."""

    def __init__(self, ns: str) -> None:
        os.environ["ROS_DOMAIN_ID"] = DOMAIN
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory

        self.rclpy = rclpy
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("probe", namespace=ns, context=self.ctx)
        self.lock = threading.Lock()
        self.results: list[dict] = []
        self.joint_states: list[tuple[float, list[float]]] = []
        self.joint_velocities: list[list[float]] = []
        self.joint_stamps: list[float] = []  # header stamps of the joint states [s]
        self.trajectories: list[JointTrajectory] = []
        # Relay of the twin's joint states to the arm node (a fault injector: stop relaying).
        self.relay_on = True
        n = self.node
        self.relay_pub = n.create_publisher(JointState, "relay/joint_states", 50)
        self.estop_pub = n.create_publisher(Bool, "icpi/estop", 10)
        self.raw_pubs: dict[str, object] = {}
        from rclpy.qos import HistoryPolicy, QoSProfile

        every = QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=1000)
        self.request_pub = n.create_publisher(Float64MultiArray, "icpi/trial_request", every)
        n.create_subscription(String, "icpi/trial_result", self._on_result, every)
        self.progress: list[dict] = []
        n.create_subscription(
            String, "icpi/progress", lambda m: self.progress.append(json.loads(m.data)), 10
        )
        from rclpy.qos import DurabilityPolicy

        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.arm_state = ""
        n.create_subscription(String, "icpi/arm_state", self._on_state, latched)
        n.create_subscription(JointState, "joint_states", self._on_js, 50)
        n.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", self._on_traj, 10)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.ctx.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                return

    def _on_result(self, msg) -> None:
        with self.lock:
            self.results.append(json.loads(msg.data))

    def _on_state(self, msg) -> None:
        with self.lock:
            self.arm_state = msg.data

    def _on_js(self, msg) -> None:
        with self.lock:
            self.joint_states.append((time.monotonic(), list(msg.position)))
            self.joint_velocities.append(list(msg.velocity))
            self.joint_stamps.append(msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec)
            relay = self.relay_on
        if relay:
            self.relay_pub.publish(msg)

    def _on_traj(self, msg) -> None:
        with self.lock:
            self.trajectories.append(msg)

    def publisher(self, msg_type, topic: str):
        if topic not in self.raw_pubs:
            self.raw_pubs[topic] = self.node.create_publisher(msg_type, topic, 10)
        return self.raw_pubs[topic]

    def wait_for(self, predicate, timeout: float, what: str = "condition", procs=None):
        """Wait until ``predicate()`` holds; on a timeout, say what the graph did.

        Args:
            predicate: Called under the probe's lock.
            timeout: Longest wait [s].
            what: Named in the error.
            procs: Node processes whose log tails the error carries (and the probe's
                arm state and results).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                value = predicate()
            if value:
                return value
            time.sleep(0.02)
        why = f"timed out after {timeout} s waiting for {what}"
        if procs is not None:
            with self.lock:
                seen = f"arm state {self.arm_state!r}, results {self.results}"
            why += f"\n{seen}\n{logs(procs)}"
        raise AssertionError(why)

    def wait_matched(self, timeout: float = 45.0, ready: tuple[str, ...] = ("idle",)) -> None:
        """Wait until the arm node subscribes to requests, publishes results and is ``ready``."""
        self.wait_for(
            lambda: (
                self.request_pub.get_subscription_count() > 0
                and self.node.count_publishers("icpi/trial_result") > 0
            ),
            timeout,
            "the arm node",
        )
        self.wait_for(lambda: len(self.joint_states) > 5, timeout, "joint states")
        self.wait_for(lambda: self.arm_state in ready, timeout, f"the arm node to be {ready}")

    def request(self, trial_id: int, theta, goal=(0.7, 0.0)) -> None:
        from std_msgs.msg import Float64MultiArray

        data = [float(trial_id), *map(float, theta), *map(float, goal)]
        self.request_pub.publish(Float64MultiArray(data=data))

    def result(self, trial_id: int, timeout: float) -> dict:
        return self.wait_for(
            lambda: next((r for r in self.results if r["trial_id"] == trial_id), None),
            timeout,
            f"result of trial {trial_id}",
        )

    def call_trigger(self, name: str, timeout: float = 10.0):
        from std_srvs.srv import Trigger

        client = self.node.create_client(Trigger, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f"service {name} not available")
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.done(), f"service {name} did not answer"
        return future.result()

    def close(self) -> None:
        self.ctx.try_shutdown()
        self._thread.join(timeout=2)
        self.node.destroy_node()


def measure_clock(probe: Probe, seconds: float = 1.5) -> tuple[float, float]:
    """The twin's clock as the probe sees it: rate (simulated s per wall s) and worst gap.

    Args:
        probe: A probe receiving the twin's joint states.
        seconds: How long to watch [wall s].

    Returns:
        ``(rate, worst wall-time gap between joint states [s])``.
    """
    with probe.lock:
        n0 = len(probe.joint_states)
    time.sleep(seconds)
    with probe.lock:
        wall = [t for t, _ in probe.joint_states[n0:]]
        stamps = probe.joint_stamps[n0:]
    if len(wall) < 3:
        raise AssertionError(f"the twin published {len(wall)} joint states in {seconds} s")
    rate = (stamps[-1] - stamps[0]) / (wall[-1] - wall[0])
    gap = max(b - a for a, b in itertools.pairwise(wall))
    return rate, gap


# ---------------------------------------------------------------- what the controller got
def trajectory_arrays(msg, joint_names) -> tuple:
    """Times (N,) and positions, velocities, accelerations (N, 3, J) of a JointTrajectory."""
    import numpy as np

    order = [list(msg.joint_names).index(n) for n in joint_names]
    t = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in msg.points])

    def values(arr):  # missing velocities or accelerations: zero
        return [arr[j] if len(arr) else 0.0 for j in order]

    d = [[values(p.positions), values(p.velocities), values(p.accelerations)] for p in msg.points]
    return t, np.array(d, dtype=float).reshape(len(t), 3, len(joint_names))


def takeovers(log_text: str) -> dict[float, float]:
    """When a jtc twin took each trajectory over, by header stamp, from its log [s]."""
    import re

    pattern = r"taken over at ([0-9.]+) s: \d+ points, stamp ([0-9.]+) s"
    return {float(stamp): float(t) for t, stamp in re.findall(pattern, log_text)}


def limit_violations(trajs, joint_names, q0, vmax, amax, jmax, slack=1.05, taken=None):
    """Check what a controller executes, from the trajectories it received (a test oracle).

    Two controller models (``icpi.robot.twin``). ``stamp`` (``taken`` None): a
    trajectory starts at its header stamp from the reference at that moment (position,
    velocity, acceleration). ``jtc`` (``taken``: the take-over time of each trajectory by
    its header stamp, :func:`takeovers`), joint_trajectory_controller's
    ``Trajectory::sample``: it replaces the running one when it arrives; before its first
    point it runs a quintic from the state then (the running curve's position and
    velocity: the twin tracks it within micrometres; acceleration zero), after its first
    point it samples into the message's own segments. Either way quintic segments
    through its points, and a hold after the last. Each curve's own speed, acceleration
    and jerk are evaluated every 2 ms while it runs (scipy's BPoly, independent of the
    node's checks), and so is each take-over, as one 2 ms control cycle: a jump of
    position (none allowed), of velocity (within the acceleration limit) or of
    acceleration (within the jerk limit). ``q0`` is where the arm rests before the first
    one (a joint state).

    Returns:
        Descriptions of the violations (empty when everything is within limits).
    """
    import numpy as np
    from scipy.interpolate import BPoly

    vmax, amax, jmax = (np.asarray(x, dtype=float) * slack for x in (vmax, amax, jmax))
    n_j = len(joint_names)
    rest = np.vstack([np.asarray(q0, dtype=float), np.zeros(n_j), np.zeros(n_j)])

    def begin(m):
        stamp = m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec
        if taken is None:
            return stamp, stamp
        return taken[round(stamp, 4)], stamp

    segs = sorted((*begin(m), *trajectory_arrays(m, joint_names)) for m in trajs)
    curves = []  # (from, poly, end, last point)

    def state(x):  # the running curve's position, velocity, acceleration at x
        if not curves:
            return rest
        _, poly, end, last = curves[-1]
        if x >= end:
            return np.vstack([last, np.zeros(n_j), np.zeros(n_j)])
        return np.stack([poly(x, nu=d) for d in range(3)])

    out = []
    for t_in, stamp, t, d in segs:
        before = state(t_in)
        if stamp + t[0] > t_in + 1e-9:  # its first point ahead: from the state on arrival
            start = before.copy()
            if taken is not None:
                start[2] = 0.0  # jtc: measured, no acceleration
            knots = np.concatenate([[t_in], stamp + t])
            poly = BPoly.from_derivatives(knots, [start, *d])
        else:  # jtc, its first point past: sampled into
            knots = stamp + t
            poly = BPoly.from_derivatives(knots, list(d)) if len(t) > 1 else None
            if poly is None or t_in >= knots[-1]:
                out.append(f"the trajectory stamped {stamp:.3f} s arrived after its end")
                continue
        curves.append((t_in, poly, knots[-1], d[-1, 0]))
        step = np.abs(state(t_in) - before)
        if (
            np.any(step[0] > 1e-6)
            or np.any(step[1] > amax * 0.002)
            or np.any(step[2] > jmax * 0.002)
        ):
            out.append(f"taken over at {t_in:.3f} s with a step of {step.round(6).tolist()}")
    for i, (t_in, poly, end, _) in enumerate(curves):
        until = min(end, curves[i + 1][0]) if i + 1 < len(curves) else end
        x = np.arange(t_in, until, 0.002)
        if len(x) == 0:
            continue
        for order, name, lim in ((1, "speed", vmax), (2, "acceleration", amax), (3, "jerk", jmax)):
            worst = np.abs(poly(x, nu=order)).max(axis=0)
            if np.any(worst > lim):
                out.append(
                    f"{name} {worst.round(2).tolist()} (limit {lim.round(2).tolist()}) on the"
                    f" curve taken over at {t_in:.3f} s"
                )
    return out


def built_types(module: str, *names: str) -> tuple:
    """Types of a package that ``make ros-types`` builds; skip without it (fail on CI).

    Args:
        module: E.g. ``control_msgs.action``.
        names: The types to return, in order.
    """
    try:
        found = importlib.import_module(module)
    except ImportError:
        reason = f"{module.split('.')[0]} is not built into this venv (make ros-types)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; `make test` builds it before the tests")
        pytest.skip(reason)
    return tuple(getattr(found, name) for name in names)
