"""Records every trial's messages into its own bag (the driver node hosts it; rclpy).

The recorder subscribes to each role's topic (:data:`icpi.robot.bags.ROLES`) with
``raw=True`` — messages arrive as the bytes DDS delivered and go to the bag as they are,
without being decoded — and follows the trial contract on its own: a request on the
request topic opens ``<directory>/trial_<id>/`` (with the arm's latest state and camera
info), every message until the result of that trial is recorded, and the result closes
the bag. Images and camera infos are recorded at most ``image_rate`` times a second; a
trial without a result is closed after ``trial_timeout`` (``icpi.recording:
no_result``), and an open bag is closed when the node shuts down. Writing (zstd, disk)
happens on a thread of its own, never on the executor.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.serialization import deserialize_message
from std_msgs.msg import Float64MultiArray, String

from icpi.robot.bags import BagError, TrialBagWriter, bag_name

log = logging.getLogger(__name__)

_EVERY = QoSProfile(
    history=HistoryPolicy.KEEP_ALL, depth=1000, reliability=ReliabilityPolicy.RELIABLE
)
_LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
_QOS = {
    "request": _EVERY,
    "result": _EVERY,
    "trajectory": QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
    "arm_state": _LATCHED,
}
# Roles recorded at most image_rate times a second, and those whose latest message opens
# every bag.
_THROTTLED = ("image", "camera_info")
_LATEST = ("arm_state", "camera_info")


def _message_class(role: str) -> Any:
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    return {
        "request": Float64MultiArray,
        "result": String,
        "trajectory": JointTrajectory,
        "joint_states": JointState,
        "ball": PointStamped,
        "image": Image,
        "camera_info": CameraInfo,
        "arm_state": String,
    }[role]


class TrialRecorder:
    """One bag per trial (see the module docstring)."""

    def __init__(
        self,
        node: Node,
        directory: Path,
        topics: dict[str, str],
        image_rate: float,
        trial_timeout: float,
    ) -> None:
        """Subscribe to the topics and start the writer thread.

        Args:
            node: The node that hosts the recorder (its clock stamps the messages).
            directory: Where the bags go.
            topics: Role → topic; a role left out (or an empty topic) is not recorded.
            image_rate: Most images (and camera infos) per second in a bag (0: none).
            trial_timeout: A bag without its result is closed after this long [s, wall].
        """
        self.node = node
        self.directory = Path(directory)
        self.topics = {role: topic for role, topic in topics.items() if topic}
        self.image_period = 1.0 / image_rate if image_rate > 0 else None
        self.trial_timeout = trial_timeout
        self.bags: list[Path] = []  # completed bags, in order
        self._open: int | None = None  # trial id of the bag being recorded
        self._opened = 0.0
        self._last: dict[str, bytes] = {}
        self._last_kept: dict[str, float] = {}
        self._lock = threading.Lock()
        self._jobs: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="icpi-bags", daemon=True)
        self._writer.start()
        for role, topic in self.topics.items():
            if role in _THROTTLED and self.image_period is None:
                continue
            node.create_subscription(
                _message_class(role),
                topic,
                self._callback(role, topic),
                _QOS.get(role, qos_profile_sensor_data),
                raw=True,
            )
        node.create_timer(0.5, self._check_timeout)

    def _callback(self, role: str, topic: str) -> Callable[[bytes], None]:
        return lambda raw: self._on_message(role, topic, raw)

    def _now_ns(self) -> int:
        return int(self.node.get_clock().now().nanoseconds)

    def _on_message(self, role: str, topic: str, raw: bytes) -> None:
        now = self._now_ns()
        with self._lock:
            if role in _LATEST:
                self._last[role] = raw
            if role == "request" and self._open is None:
                trial_id = _trial_id_of_request(raw)
                if trial_id is None:
                    return
                self._start(trial_id, now)
            if self._open is None:
                return
            if role in _THROTTLED:
                wall = time.monotonic()
                if wall - self._last_kept.get(role, -math.inf) < (self.image_period or 0.0):
                    return
                self._last_kept[role] = wall
            self._jobs.put(("write", topic, now, raw))
            if role == "result" and _trial_id_of_result(raw) == self._open:
                self._finish("result")

    def _start(self, trial_id: int, now: int) -> None:
        self._open = trial_id
        self._opened = time.monotonic()
        self._last_kept.clear()
        self._jobs.put(("open", trial_id))
        for role in _LATEST:
            if role in self._last and role in self.topics:
                self._jobs.put(("write", self.topics[role], now, self._last[role]))

    def _finish(self, status: str) -> None:
        self._jobs.put(("close", status))
        self._open = None

    def _check_timeout(self) -> None:
        with self._lock:
            if self._open is not None and time.monotonic() - self._opened > self.trial_timeout:
                log.warning(
                    "trial %d: no result within %.0f s; bag closed", self._open, self.trial_timeout
                )
                self._finish("no_result")

    def _write_loop(self) -> None:
        bag: TrialBagWriter | None = None
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    if bag is not None:
                        bag.close("interrupted")
                        self.bags.append(bag.path)
                    return
                if job[0] == "open":
                    path = self.directory / bag_name(job[1])
                    bag = TrialBagWriter(path, self.topics, job[1])
                elif job[0] == "write" and bag is not None:
                    bag.write(job[1], job[2], job[3])
                elif job[0] == "close" and bag is not None:
                    bag.close(job[1])
                    self.bags.append(bag.path)
                    log.info("recorded %s (%d messages)", bag.path, bag.messages)
                    bag = None
            except (BagError, OSError, ValueError) as err:  # a full disk: say so, keep the trial
                log.error("bag recording failed: %s", err)
                bag = None
            finally:
                self._jobs.task_done()

    def close(self) -> None:
        """Close the open bag (its trial unfinished) and stop the writer thread."""
        self._jobs.put(None)
        self._writer.join(timeout=10.0)


def _trial_id_of_request(raw: bytes) -> int | None:
    data = list(deserialize_message(raw, Float64MultiArray).data)
    if not data or not math.isfinite(data[0]) or data[0] != int(data[0]) or data[0] <= 0:
        return None
    return int(data[0])


def _trial_id_of_result(raw: bytes) -> int | None:
    try:
        body = json.loads(deserialize_message(raw, String).data)
        return int(body["trial_id"])
    except (ValueError, TypeError, KeyError):
        return None
