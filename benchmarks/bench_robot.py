"""Trial round-trip time through the ROS 2 graph vs the same rollout in-process.

Starts the simulated arm and the arm skill node as separate processes on a private
ROS_DOMAIN_ID (loopback only), sends the same θ as trial requests from this process (as the
driver does) and measures, per trial, the wall time from request to result. The same θ is
rolled out in-process with ``Task.rollout`` for comparison, and the outcomes are compared.

A trial through the graph runs in (scaled) real time: approach, dwell, stroke, hold, the
ball rolling to rest, the rest window and the move home. ``time_scale`` 1 is what the real
arm costs; larger scales show the floor set by the graph itself. ``messaging`` is the
round trip minus the time the arm node spent inside the trial (DDS, JSON, scheduling).

It first prints the stop scan (issue 19, item 1): per arm configuration, for the θ its
driver starts at and the fastest stroke of its θ box, the arm node's own stop planned at
every 5 ms of a trial, each checked exactly between its knots, with the worst peak over
its limit. Under ``jtc`` a stop is stamped in the past and begins with the running
curve's own knots, so that joint_trajectory_controller, taking it over whenever it
arrives, samples into it and goes on along the running curve: the scan prints how far
from the running curve (position, velocity, acceleration) any take-over in the lead
puts the reference.

    .venv/bin/python benchmarks/bench_robot.py [--trials 5] [--scales 1 10] [--no-pixels]
    .venv/bin/python benchmarks/bench_robot.py --scan-only     # the stop scan alone

Then, unless ``--no-pixels``, the camera pipeline on the UR5e twin
(``benchmarks/bench_pixels.py``): tracker latency and accuracy against MuJoCo's ground
truth, trial time at ``time_scale`` 1 and 10 with the tracker in the loop, bag size per
trial.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "launch" / "params" / "sim_arm.yaml"
THETAS = [(0.0, 0.07, 0.31), (0.15, 0.05, 0.2), (0.0, 0.09, 0.35), (0.1, 0.06, 0.3)]  # small Δθ
GOAL = (0.7, 0.0)


def start(module: str, ns: str, params: dict[str, str], env: dict[str, str], log: Path):
    args = [sys.executable, "-m", f"icpi.robot.{module}", "--ros-args"]
    args += ["--params-file", str(PARAMS), "-r", f"__ns:={ns}"]
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    return subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def in_process(n: int) -> tuple[float, list[np.ndarray]]:
    from icpi.envs import make_task

    task = make_task("ball-roll-gc")
    inst = task.make_instance(goal=GOAL, physics={"ball_mass": 0.065, "rolling_friction": 0.0035})
    task.rollout(inst, THETAS[0])  # compile + warm up
    times, outcomes = [], []
    for i in range(n):
        t0 = time.perf_counter()
        r = task.rollout(inst, THETAS[i % len(THETAS)])
        times.append(time.perf_counter() - t0)
        outcomes.append(r.outcome)
    return statistics.median(times), outcomes


def through_graph(scale: float, n: int, domain: str, tmp: Path) -> dict:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import Float64MultiArray, String

    env = os.environ.copy()
    env.update(ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    os.environ.update(ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    ns = f"/bench{os.getpid()}_{int(scale * 100)}"
    sim_params = {"time_scale": str(float(scale)), "camera_noise": "0.0", "camera_dropout": "0.0"}
    procs = [
        start("sim_arm_node", ns, sim_params, env, tmp / f"sim{scale}.log"),
        # Trajectories start a lead (wall s, scaled to the twin's clock) after they are sent.
        start("arm_node", ns, {"trajectory_lead": "0.05"}, env, tmp / f"arm{scale}.log"),
    ]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench", namespace=ns, context=ctx)
    results: dict[int, tuple[float, dict]] = {}
    cond = threading.Condition()

    def on_result(msg):
        with cond:
            body = json.loads(msg.data)
            results[body["trial_id"]] = (time.perf_counter(), body)
            cond.notify_all()

    seen = {"state": ""}

    def on_state(msg):
        seen["state"] = msg.data

    pub = node.create_publisher(Float64MultiArray, "icpi/trial_request", 10)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(String, "icpi/arm_state", on_state, latched)
    node.create_subscription(String, "icpi/trial_result", on_result, 10)
    stop = threading.Event()

    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)

    def spin():
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.05)

    th = threading.Thread(target=spin)
    th.start()
    try:
        deadline = time.monotonic() + 60
        while (
            pub.get_subscription_count() == 0
            or node.count_publishers("icpi/trial_result") == 0
            or seen["state"] != "idle"
        ):
            assert time.monotonic() < deadline, "the arm or the simulated arm did not come up"
            time.sleep(0.05)
        rows = []
        for i in range(n):
            theta = THETAS[i % len(THETAS)]
            t0 = time.perf_counter()
            pub.publish(Float64MultiArray(data=[float(i + 1), *theta, *GOAL]))
            with cond:
                assert cond.wait_for(lambda i=i: i + 1 in results, timeout=120), "no result"
            t1, body = results[i + 1]
            assert body["status"] == "ok", body
            rows.append((t1 - t0, body))
        rt = [r for r, _ in rows]
        phases = {
            k: statistics.median(b["timing"].get(k, 0.0) for _, b in rows)
            for k in ("motion_s", "settle_s", "home_after_s", "total_s")
        }
        return {
            "round_trip_s": statistics.median(rt),
            "round_trip_min_s": min(rt),
            "messaging_s": statistics.median(r - b["timing"]["total_s"] for r, b in rows),
            "phases": phases,
            "outcomes": [np.asarray(b["outcome"]) for _, b in rows],
        }
    finally:
        stop.set()
        th.join(timeout=2)
        node.destroy_node()
        ctx.try_shutdown()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


# Stop-scan configurations: params file, overrides.
SCAN = {
    "sim twin, test limits": (
        "sim_arm.yaml",
        {
            "velocity_limits": [4.0, 4.0],
            "acceleration_limits": [40.0, 40.0],
            "jerk_limits": [1500.0, 1500.0],
        },
    ),
    "hardware.yaml": ("hardware.yaml", {}),
    "UR5e": ("ur5e.yaml", {}),
    "Panda": ("panda.yaml", {}),
}


def scan_thetas(yaml_path: Path) -> dict[str, np.ndarray]:
    """The θ a config's driver starts at (its θ box's centre) and its box's fastest stroke.

    The fastest: angle 0, the largest backswing in the shortest time of the box.
    """
    import yaml

    doc = yaml.safe_load(yaml_path.read_text())
    box = next(v for k, v in doc.items() if k.endswith("icpi_driver"))["ros__parameters"]
    low, high = np.split(np.asarray(box["theta_box"], dtype=float), 2)
    return {"centre": 0.5 * (low + high), "fastest": np.array([0.0, high[1], low[2]])}


def stop_scan() -> None:
    """Print the stop scan per configuration (see the module docstring)."""
    from icpi.robot.skill import (
        State,
        TimedPlan,
        curve_peaks,
        held_at_start,
        plan_trial,
        stop_plan,
    )
    from icpi.robot.theta_box import arm_config

    print("stop scan: the arm node's stop every 5 ms of a trial, checked between knots")
    for name, (yaml_name, over) in SCAN.items():
        path = ROOT / "launch" / "params" / yaml_name
        cfg = arm_config(path)
        for k, v in over.items():
            setattr(cfg, k, v)
        arm, limits, model = cfg.arm(), cfg.limits(), cfg.controller_model
        lims = [np.asarray(x) for x in (limits.velocity, limits.acceleration, limits.jerk)]
        for which, theta in scan_thetas(path).items():
            plan = plan_trial(cfg.skill, theta, arm, State.at_rest(cfg.home), cfg.timing())
            if model == "jtc":  # as the arm node sends it (held at its start)
                plan = held_at_start(plan)
            refused = limits.check_plan(arm, plan)
            if refused:  # the arm node refuses it: nothing to stop
                print(
                    f"  {name:22s} ({model}, {which} θ {np.round(theta, 4).tolist()}):"
                    f" refused ({refused[0]})"
                )
                continue
            active = TimedPlan(plan, 0.0)
            lead = cfg.stop_lead  # a real arm's clock: controller seconds = wall seconds
            n = ok = none = 0
            worst, jump, t_plan = 0.0, 0.0, []
            for now in np.arange(0.0, plan.duration, 0.005):
                # As the arm node: sent at now - lead, may arrive from a lead earlier still.
                jtc_from = now - 2.0 * lead if model == "jtc" else None
                t0 = time.perf_counter()
                timed, why = stop_plan(active, now, arm, limits, cfg.sample_dt, jtc_from)
                t_plan.append(time.perf_counter() - t0)
                if timed is None:
                    none += bool(why)
                    n += bool(why)
                    continue
                n += 1
                stop = timed.plan
                ratio = max(
                    float(np.max(peak / lim))
                    for (peak, _), lim in zip(curve_peaks(stop.curve), lims, strict=True)
                )
                if jtc_from is not None:  # arriving in its lead, it continues the running curve
                    for t in np.linspace(now - lead, now, 11):
                        here = np.clip(t, 0.0, plan.duration)
                        for d in range(3):
                            gap = stop.curve(t - timed.sent_at, nu=d) - plan.curve(here, nu=d)
                            jump = max(jump, float(np.max(np.abs(gap))))
                worst = max(worst, ratio)
                ok += ratio <= 1.0 + 1e-9
            line = (
                f"  {name:22s} ({model}, {which} θ {np.round(theta, 4).tolist()}): {ok} of {n}"
                f" stops within every limit ({100.0 * ok / max(n, 1):.1f} %), {none} not found;"
                f" worst peak {worst:.3f}x its limit; planning {1e3 * np.median(t_plan):.1f} ms"
                f" median, {1e3 * max(t_plan):.0f} ms max"
            )
            if model == "jtc":
                line += f"; taken over anywhere in its lead: off the running curve by {jump:.1e}"
            print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--no-pixels", action="store_true", help="skip bench_pixels.py's figures")
    ap.add_argument("--scan-only", action="store_true", help="only the stop scan (no ROS)")
    args = ap.parse_args()
    stop_scan()
    if args.scan_only:
        return
    domain = str(1 + os.getpid() % 100)
    t_proc, out_proc = in_process(max(args.trials, 20))
    print(f"load average {os.getloadavg()[0]:.2f}; {args.trials} trials per setting")
    print(f"in-process Task.rollout (3 s of physics): {1e3 * t_proc:8.1f} ms median")
    with tempfile.TemporaryDirectory(prefix="bench_robot_") as tmp:
        for scale in args.scales:
            g = through_graph(scale, args.trials, domain, Path(os.environ.get("BENCH_LOGS", tmp)))
            diff = max(float(np.max(np.abs(o - out_proc[i]))) for i, o in enumerate(g["outcomes"]))
            ph = g["phases"]
            print(
                f"graph, time_scale {scale:5.1f}: round trip {g['round_trip_s']:6.2f} s median"
                f" (min {g['round_trip_min_s']:.2f}) = motion {ph['motion_s']:.2f}"
                f" + settle {ph['settle_s']:.2f} + home {ph['home_after_s']:.2f}"
                f" + messaging {1e3 * g['messaging_s']:.1f} ms;"
                f" {g['round_trip_s'] / t_proc:6.0f}x in-process;"
                f" outcome vs in-process ≤ {1e3 * diff:.3f} mm"
            )

    if not args.no_pixels:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_pixels import graph, tracker_in_process

        tracker_in_process(100)
        with tempfile.TemporaryDirectory(prefix="bench_pixels_") as tmp:
            for scale in args.scales:
                graph(scale, args.trials, Path(os.environ.get("BENCH_LOGS", tmp)))


if __name__ == "__main__":
    main()
