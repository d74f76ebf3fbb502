"""``icpi-driver-node``: runs ICPI's loop (the very same as in simulation) against the arm.

The run is :func:`icpi.manipulation.run.run_method` with an :class:`~icpi.robot.adapter.ArmTask`
whose rollouts travel over ROS: a request on ``request_topic``
(std_msgs/Float64MultiArray), the answer on ``result_topic`` (std_msgs/String JSON), see
:mod:`icpi.robot.contract`. The run directory (``out``) is the one a simulated run
writes. The loop runs on a worker thread, never on the executor; each rollout is published
on ``progress_topic`` and the summary (or the error that ended the run) on
``summary_topic`` (transient local). With ``relabel_out`` set, the run's rollouts are
hindsight-relabelled into a dataset there at the end. With ``record_bags`` (default),
every trial's messages go into a bag of its own under ``bag_dir`` (default
``<out>/bags``; :mod:`icpi.robot.bag_recorder`), from which ``icpi collect --from-bags``
builds a dataset.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray, String

from icpi.envs.spec import Rollout
from icpi.robot.adapter import ArmTask, TrialFailed, arm_box, relabel_rollouts
from icpi.robot.bag_recorder import TrialRecorder
from icpi.robot.contract import ContractError, TrialRequest, TrialResult
from icpi.robot.params import DriverConfig, declare_config, declare_layer, refuse_undeclared
from icpi.robot.ros_common import run_node

log = logging.getLogger(__name__)

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Results: nothing dropped, even among a flood of other clients' results.
EVERY = QoSProfile(
    history=HistoryPolicy.KEEP_ALL, depth=1000, reliability=ReliabilityPolicy.RELIABLE
)
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
# Poll period while waiting for the arm to subscribe [s].
_POLL_S = 0.05
# Say why a request waits once it has waited this long [s].
_SAY_AFTER_S = 1.0
# Arm states in which a request is held back (an e-stopped arm answers at once).
_NOT_READY = ("", "no_joint_states", "no_camera", "no_controller", "arm_fault", "busy")


class RosTransport:
    """Requests over the driver node's topics (an :class:`~icpi.robot.adapter.Transport`)."""

    def __init__(self, node: DriverNode) -> None:
        """Wire to the node's publisher; results arrive through :meth:`deliver`.

        Args:
            node: The driver node.
        """
        self.node = node
        self._lock = threading.Lock()
        self._waiting: dict[int, threading.Event] = {}
        self._results: dict[int, TrialResult] = {}

    def deliver(self, result: TrialResult) -> None:
        """Hand over a result from the subscription callback.

        Args:
            result: A result; unknown trial ids are ignored.
        """
        with self._lock:
            event = self._waiting.get(result.trial_id)
            if event is None:
                log.warning("result for unknown trial %d ignored", result.trial_id)
                return
            self._results[result.trial_id] = result
        event.set()

    def request(self, req: TrialRequest, timeout: float) -> TrialResult:
        """Publish a request and wait for its result.

        Args:
            req: The request.
            timeout: Longest wait [s], subscription matching included.

        Returns:
            The result.

        Raises:
            TimeoutError: If the arm does not subscribe or answer in time.
        """
        event = threading.Event()
        with self._lock:
            self._waiting[req.trial_id] = event
        try:
            pub = self.node.request_pub
            waited = 0.0
            said = ""
            # Wait for the arm: connected both ways, with joint states and camera flowing,
            # and its driver ready (no protective stop).
            while (
                pub.get_subscription_count() == 0
                or self.node.count_publishers(self.node.cfg.result_topic) == 0
                or self.node.arm_state in _NOT_READY
            ):
                state = self.node.arm_state or "unknown"
                if waited >= timeout:
                    raise TimeoutError(f"the arm skill node is not ready (state {state!r})")
                if state != said and waited >= _SAY_AFTER_S:  # say why, once per state
                    self.node.get_logger().info(
                        f"trial {req.trial_id} waits for the arm skill node (state {state!r})"
                    )
                    said = state
                self.node.stop_event.wait(_POLL_S)
                waited += _POLL_S
            pub.publish(Float64MultiArray(data=req.encode()))
            if not event.wait(max(0.0, timeout - waited)):
                raise TimeoutError(f"trial {req.trial_id}: no result")
            with self._lock:
                return self._results.pop(req.trial_id)
        finally:
            with self._lock:
                self._waiting.pop(req.trial_id, None)


class DriverNode(Node):
    """The ICPI driver (see the module docstring)."""

    def __init__(self, sampler: Any = None, **kwargs: Any) -> None:
        """Declare the parameters, wire the topics and start the run on a worker thread.

        Args:
            sampler: A sampler to use instead of the ``sampler`` parameter's (tests).
            **kwargs: Passed to :class:`rclpy.node.Node`.

        Raises:
            ValueError: On invalid parameters.
        """
        from icpi.config import leaf_names
        from icpi.llm.config import LLMConfig
        from icpi.manipulation.config import load_run_config, parameter_names

        super().__init__("icpi_driver", **kwargs)
        self.cfg = declare_config(self, DriverConfig)
        # What to run: the typed configuration of `icpi run`, from the run.* / llm.* params.
        run_layer = declare_layer(self, "run", parameter_names())
        self.llm_layer = declare_layer(
            self, "llm", leaf_names(LLMConfig, skip=("api_key", "sampling.n", "sampling.seed"))
        )
        refuse_undeclared(self)
        self.run_config = load_run_config(
            {"task": "ball-roll-gc"}, run_layer, where="the run.* parameters"
        )
        if self.cfg.sampler not in ("llm", "nearest"):
            raise ValueError(f"sampler must be llm or nearest, got {self.cfg.sampler!r}")
        self.done = False
        self.exit_code = 0
        self.summary: dict[str, Any] | None = None
        self.stop_event = threading.Event()
        self._sampler = sampler
        self.request_pub = self.create_publisher(
            Float64MultiArray, self.cfg.request_topic, RELIABLE
        )
        self.progress_pub = self.create_publisher(String, self.cfg.progress_topic, RELIABLE)
        self.summary_pub = self.create_publisher(String, self.cfg.summary_topic, LATCHED)
        self.transport = RosTransport(self)
        self.arm_state = ""
        self.create_subscription(String, self.cfg.arm_state_topic, self._on_arm_state, LATCHED)
        self.create_subscription(String, self.cfg.result_topic, self._on_result, EVERY)
        self.task = ArmTask(
            self.run_config.task,
            self.transport,
            goal=self.cfg.goal,
            physics=self.cfg.physics,
            trust_region=self.cfg.trust_region,
            trial_timeout=self.cfg.trial_timeout,
            on_rollout=self._on_rollout,
            # Unique across restarts: the wall-clock millisecond at start, then counting up.
            first_trial_id=int(time.time() * 1000),
            theta_box=self.cfg.theta_box,
            start_theta=self._start_theta(),
            max_refusals=self.cfg.max_refusals,
        )
        self.get_logger().info(
            f"θ box of the arm {self.task.box_low.tolist()}..{self.task.box_high.tolist()},"
            f" start θ {self.task.start_theta.tolist()}"
        )
        self.recorder: TrialRecorder | None = None
        if self.cfg.record_bags:
            self.recorder = TrialRecorder(
                self,
                Path(self.cfg.bag_dir or Path(self.cfg.out) / "bags"),
                self.cfg.bag_topics(),
                self.cfg.bag_image_rate,
                self.cfg.trial_timeout,
            )
        self._worker = threading.Thread(target=self._run, name="icpi-driver", daemon=True)
        self._worker.start()

    def _start_theta(self) -> list[float] | None:
        """``start_theta``, or a θ drawn in the arm's box for ``run.theta0: random``."""
        if self.cfg.start_theta is not None or self.run_config.theta0 != "random":
            return self.cfg.start_theta  # None: the centre of the arm's box
        from icpi.envs import make_task

        low, high = arm_box(make_task(self.run_config.task).theta_spec, self.cfg.theta_box)
        drawn: list[float] = np.random.default_rng(self.run_config.seed).uniform(low, high).tolist()
        return drawn

    def _resume_theta(self, records: Path) -> None:
        """A resumed run goes on from its last executed θ (trust region, refusal anchor).

        The arm node measures the trust region from the last trial it completed, which a
        driver started again after an e-stop or an abort must know too, or its next θ may
        be refused (a torn or foreign line leaves the start θ in force: run_method checks
        the run directory itself).
        """
        from icpi.core.files import read_jsonl

        try:
            rows = read_jsonl(records) if records.is_file() else []
            last = rows[-1]["theta"] if rows else None
            if last is not None:
                self.task.last_theta = np.asarray(last, dtype=np.float64)
                self.get_logger().info(f"resuming from θ {list(last)}")
        except (KeyError, TypeError, ValueError, OSError) as err:
            self.get_logger().warning(f"{records}: no last θ to resume from ({err})")

    def _on_result(self, msg: String) -> None:
        try:
            result = TrialResult.from_json(msg.data)
        except ContractError as err:
            self.get_logger().warning(f"ignored malformed trial result: {err}")
            return
        self.transport.deliver(result)

    def _on_arm_state(self, msg: String) -> None:
        self.arm_state = str(msg.data)

    def _on_rollout(self, r: Rollout) -> None:
        body = {
            "trial_id": r.info.get("trial_id"),
            "rollout": len(self.task.rollouts),
            "theta": r.theta.tolist(),
            "clipped": r.clipped,
            "outcome": r.outcome.tolist(),
            "e": r.e.tolist(),
            "cost": r.cost,
            "timing": r.info.get("timing"),
            "refusals": r.info.get("refusals", []),
        }
        self.progress_pub.publish(String(data=json.dumps(body)))
        self.get_logger().info(f"rollout {body['rollout']}: cost {r.cost:.4f} m")

    def _run(self) -> None:
        from icpi.core import ScriptedSampler, copy_nearest_example
        from icpi.llm import LLMConfig
        from icpi.manipulation.methods import get_method
        from icpi.manipulation.run import run_method

        cfg = self.cfg
        run = self.run_config
        llm = LLMConfig.from_sources(
            overrides=self.llm_layer, defaults=get_method(run.method).llm_defaults
        )
        sampler = self._sampler
        if sampler is None and cfg.sampler == "nearest":
            sampler = ScriptedSampler(copy_nearest_example)
        self._resume_theta(Path(cfg.out) / "records.jsonl")
        summary: dict[str, Any]
        try:
            summary = run_method(
                run,
                Path(cfg.out),
                llm=llm,
                sampler=sampler,
                task=self.task,
                instance=self.task.instance,
                theta0=self.task.start_theta,
            )
            summary["status"] = "done"
            if cfg.relabel_out and len(self.task.rollouts) >= 2:
                from icpi.manipulation.dataset import DatasetError

                try:  # after a finished run: a relabelling that yields nothing fails alone
                    ds = relabel_rollouts(self.task, self.task.rollouts, Path(cfg.relabel_out))
                    summary["relabelled_examples"] = len(ds)
                except DatasetError as err:
                    self.get_logger().warning(f"nothing relabelled into {cfg.relabel_out}: {err}")
                    summary["relabelled_examples"] = 0
        except TrialFailed as err:
            self.get_logger().error(f"run stopped: {err} (resume by starting the driver again)")
            summary = {"status": "failed", "error": str(err), "trial_status": err.status}
            self.exit_code = 2
        except Exception as err:
            self.get_logger().error(f"run failed: {err}\n{traceback.format_exc()}")
            summary = {"status": "failed", "error": str(err)}
            self.exit_code = 1
        summary["out"] = cfg.out
        self.summary = summary
        self.summary_pub.publish(String(data=json.dumps(summary, default=str)))
        if cfg.exit_when_done:
            self.done = True

    def close(self) -> None:
        """Unblock the worker and close the open bag (called before ``destroy_node``)."""
        self.stop_event.set()
        if self.recorder is not None:
            self.recorder.close()


def main(args: list[str] | None = None) -> int:
    """Console script ``icpi-driver-node``.

    Args:
        args: Command-line arguments (default ``sys.argv``).

    Returns:
        Exit code: 0 when the run finished, 2 when a trial failed, 1 on another error.
    """
    return run_node(DriverNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
