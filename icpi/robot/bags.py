"""Every trial in its own bag, and the trials read back from bags (rosbags; no ROS).

**The bags.** One rosbag2 bag per trial, ``<bag dir>/trial_<trial id>/``: a
``metadata.yaml`` and one MCAP file (zstd-compressed chunks) holding the trial's messages
in ROS 2's own serialization (CDR) with their type definitions, so ``ros2 bag info`` /
``ros2 bag play`` and Foxglove read it as well as this module. Its ``custom_data`` says
which topic plays which role (:data:`ROLES`: the request, the result, the trajectories
sent, joint states, ball points, camera images and their ``CameraInfo``, the arm's
state) and the trial id. The recorder (:mod:`icpi.robot.bag_recorder`) opens a bag when a
request goes out and closes it when its result comes back; a bag whose recording was cut
off (a killed process) has no ``metadata.yaml`` and a truncated MCAP file, and reads as
truncated.

Chosen: `rosbags <https://gitlab.com/ternaris/rosbags>`_ (Apache-2.0, pure Python):
it writes the rosbag2 + MCAP layout that ``ros2 bag`` reads, generates the message
definitions MCAP needs from its own type store (no ``.msg`` files or ROS install needed),
and reads bags back without rclpy, so ``icpi collect --from-bags`` runs on any machine.
``mcap`` + ``mcap-ros2-support`` would write bare MCAP files only, from message
definitions we would have to find ourselves.

**Reading back** (:func:`read_trial`): the request gives θ and the goal, the result the
status, and the ball points (by their header stamps) the outcome: the ball's rest
position — the mean of the newest ``rest_min_points`` points, when every point of the
last ``rest_window`` lies within ``rest_radius`` of their mean (:class:`RestRule`, the
arm's own rule). A trial that did not end ``ok`` (``no_motion``, ``aborted``,
``estopped``, ``refused``...) or whose track does not end at rest is kept but never
relabelled (:attr:`RecordedTrial.usable` says why).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import yaml

from icpi.errors import UserError
from icpi.robot.track import RestRule

# Message type of each role (ROS 2 names), in the bags and on the graph.
ROLES: dict[str, str] = {
    "request": "std_msgs/msg/Float64MultiArray",
    "result": "std_msgs/msg/String",
    "trajectory": "trajectory_msgs/msg/JointTrajectory",
    "joint_states": "sensor_msgs/msg/JointState",
    "ball": "geometry_msgs/msg/PointStamped",
    "image": "sensor_msgs/msg/Image",
    "camera_info": "sensor_msgs/msg/CameraInfo",
    "arm_state": "std_msgs/msg/String",
}
# Tag of the bags' custom data.
BAG_FORMAT = "icpi-trial-bag/1"
# rosbag2 metadata version written (8: Jazzy's and Kilted's ros2 bag read it).
BAG_VERSION: Final = 8


class BagError(UserError, ValueError):
    """A bag that cannot be read (corrupt, truncated, not a trial bag): one line."""


def bag_name(trial_id: int) -> str:
    """The directory name of a trial's bag."""
    return f"trial_{int(trial_id)}"


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


class TrialBagWriter:
    """One trial's bag being written (see the module docstring). Not thread-safe."""

    def __init__(self, path: Path, topics: dict[str, str], trial_id: int) -> None:
        """Create the bag directory and register every role's topic.

        Args:
            path: The bag directory (must not exist).
            topics: Role (a key of :data:`ROLES`) → topic name.
            trial_id: The trial's id (recorded in the metadata).

        Raises:
            BagError: If the bag exists already or cannot be created.
        """
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

        self.path = Path(path)
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.set_custom_data("icpi.format", BAG_FORMAT)
        self._writer.set_custom_data("icpi.trial_id", str(int(trial_id)))
        self._writer.set_custom_data("icpi.topics", json.dumps(topics, sort_keys=True))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer.open()
        except (OSError, WriterError) as err:
            raise BagError(f"cannot record bag {self.path}: {err}") from None
        store = _typestore()
        self._connections = {
            topic: self._writer.add_connection(topic, ROLES[role], typestore=store)
            for role, topic in topics.items()
        }
        self.messages = 0

    def write(self, topic: str, time_ns: int, data: bytes) -> None:
        """Append one serialized (CDR) message.

        Args:
            topic: Its topic (one of the bag's).
            time_ns: Receive time [ns].
            data: The message as serialized by rclpy (``raw=True`` subscriptions).
        """
        self._writer.write(self._connections[topic], int(time_ns), data)
        self.messages += 1

    def close(self, status: str) -> None:
        """Write the index and ``metadata.yaml``; the bag is complete.

        Args:
            status: How the recording ended (``result``: the trial's result is in it;
                ``no_result``: it timed out), recorded in the metadata.
        """
        self._writer.set_custom_data("icpi.recording", status)
        self._writer.close()


# ---------------------------------------------------------------------------- reading
@dataclass
class RecordedTrial:
    """One trial as read back from its bag."""

    path: Path
    trial_id: int
    theta: np.ndarray
    goal: np.ndarray
    status: str
    """The result's status (``ok``, ``no_motion``, ``aborted``...; ``no_result``)."""
    reason: str
    track: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    """Ball points (N, 4): stamp [s], x, y, z [m], in stamp order."""
    reported_outcome: np.ndarray | None = None
    """The outcome the arm reported in its result (for comparison)."""
    outcome: np.ndarray | None = None
    """The rest position from the recorded track (xy), or ``None``."""
    usable: str = ""
    """Why the trial is not relabelled ('' when it is)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Messages per role."""

    @property
    def relabel(self) -> bool:
        """Whether the trial goes into a relabelled dataset."""
        return not self.usable


def rest_of(track: np.ndarray, rule: RestRule) -> np.ndarray | None:
    """The rest position at the end of a track, or ``None`` if it does not end at rest.

    Args:
        track: (N, 4) rows of stamp [s], x, y, z [m], in stamp order.
        rule: When the ball counts as at rest.

    Returns:
        Mean xyz of the newest ``min_points`` points, when every point of the last
        ``window`` seconds of stamps (and at least the newest ``min_points`` points) lies
        within ``radius`` of their mean.
    """
    if len(track) < rule.min_points:
        return None
    in_window = int(np.count_nonzero(track[:, 0] >= track[-1, 0] - rule.window))
    last = track[-max(in_window, rule.min_points) :]
    mean = last[:, 1:3].mean(axis=0)
    if float(np.max(np.linalg.norm(last[:, 1:3] - mean, axis=1))) > rule.radius:
        return None
    out: np.ndarray = last[-rule.min_points :, 1:4].mean(axis=0)
    return out


def read_trial(
    path: Path, rule: RestRule, theta_dim: int, goal_dim: int = 2, frame_id: str = "task"
) -> RecordedTrial:
    """Read one trial bag.

    Args:
        path: The bag directory.
        rule: The rest rule for the outcome.
        theta_dim: Length of θ (to split the request).
        goal_dim: Length of the goal.
        frame_id: The task frame: ball points in any other frame are not the outcome's.

    Returns:
        The trial.

    Raises:
        BagError: If the bag is truncated, corrupt, not a trial bag, or holds no valid
            request.
    """
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError

    from icpi.robot.contract import ContractError, TrialRequest, TrialResult

    path = Path(path)
    if not (path / "metadata.yaml").is_file():
        raise BagError(
            f"bag {path} is truncated: no metadata.yaml (its recording was cut off); move it"
            " out of the folder"
        )
    store = _typestore()
    try:
        info = yaml.safe_load((path / "metadata.yaml").read_text(encoding="utf-8"))
        custom = info["rosbag2_bagfile_information"].get("custom_data") or {}
        if custom.get("icpi.format") != BAG_FORMAT:
            raise BagError(f"{path} is not a trial bag of icpi (format {BAG_FORMAT!r})")
        topics: dict[str, str] = json.loads(custom["icpi.topics"])
        with Reader(path) as reader:
            role_of = {topic: role for role, topic in topics.items()}
            counts = dict.fromkeys(topics, 0)
            requests: list[TrialRequest] = []
            results: list[TrialResult] = []
            points: list[tuple[float, float, float, float]] = []
            conns = [c for c in reader.connections if c.topic in role_of]
            for conn, _, raw in reader.messages(connections=conns):
                role = role_of[conn.topic]
                counts[role] += 1
                if role not in ("request", "result", "ball"):
                    continue
                msg = store.deserialize_cdr(raw, conn.msgtype)
                if role == "request":
                    try:
                        requests.append(TrialRequest.decode(msg.data, theta_dim, goal_dim))
                    except ContractError:
                        continue
                elif role == "result":
                    try:
                        results.append(TrialResult.from_json(msg.data))
                    except ContractError as err:  # a status this version does not know
                        results.append(_unscored_result(msg.data, err))
                elif msg.header.frame_id == frame_id:
                    p, st = msg.point, msg.header.stamp
                    xyz = (float(p.x), float(p.y), float(p.z))
                    if all(math.isfinite(v) for v in xyz):
                        points.append((st.sec + 1e-9 * st.nanosec, *xyz))
    except BagError:
        raise
    except (
        ReaderError,
        yaml.YAMLError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        AssertionError,
        OSError,
    ) as err:
        raise BagError(f"bag {path} is corrupt or truncated: {err}") from None
    trial_id = int(custom.get("icpi.trial_id", 0) or 0)
    request = next((r for r in requests if r.trial_id == trial_id), None)
    if request is None:
        raise BagError(f"bag {path} holds no valid request of trial {trial_id}")
    result = next((r for r in results if r.trial_id == trial_id), None)
    track = np.array(sorted(points), dtype=np.float64).reshape(-1, 4)
    trial = RecordedTrial(
        path=path,
        trial_id=trial_id,
        theta=np.asarray(request.theta, dtype=np.float64),
        goal=np.asarray(request.goal, dtype=np.float64),
        status=result.status if result is not None else "no_result",
        reason=result.reason if result is not None else "the bag ends before the result",
        track=track,
        reported_outcome=(
            np.asarray(result.outcome, dtype=np.float64)
            if result is not None and result.outcome
            else None
        ),
        counts=counts,
    )
    if trial.status != "ok":
        trial.usable = f"status {trial.status}: {trial.reason}"
        return trial
    rest = rest_of(track, rule)
    if rest is None:
        trial.usable = f"the recorded track ({len(track)} points) does not end at rest"
        return trial
    trial.outcome = rest[:2]
    return trial


def _unscored_result(text: str, err: Exception) -> Any:
    """A result that does not parse (e.g. a newer status): never scored, reason kept."""
    from icpi.robot.contract import TrialResult

    try:
        raw = json.loads(text)
        return TrialResult(int(raw["trial_id"]), str(raw["status"]), f"{raw.get('reason')} ({err})")
    except (ValueError, TypeError, KeyError):
        return TrialResult(0, "malformed", str(err))


def trial_bags(directory: Path) -> list[Path]:
    """The trial bags in a folder (``trial_*`` directories), in name order.

    Raises:
        BagError: If the folder does not exist or holds no trial bag.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BagError(f"no bag folder {directory}")
    bags = sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith("trial_"))
    if not bags:
        raise BagError(f"{directory} holds no trial bag (trial_<id>/ folders)")
    return bags


def read_trials(
    directory: Path, rule: RestRule, theta_dim: int, goal_dim: int = 2, frame_id: str = "task"
) -> list[RecordedTrial]:
    """Every trial bag of a folder, all read before anything is used (see :func:`read_trial`).

    Raises:
        BagError: On the first bag that cannot be read (naming it).
    """
    return [read_trial(p, rule, theta_dim, goal_dim, frame_id) for p in trial_bags(directory)]


def to_rollouts(trials: Sequence[RecordedTrial]) -> list[Any]:
    """The relabellable trials as rollouts (θ, outcome, e, cost, the track as path).

    The track's last row is the rest estimate (the arm's convention), so the task's
    ``outcome`` of the path is the outcome.
    """
    from icpi.envs.spec import Rollout

    out = []
    for t in trials:
        if not t.relabel or t.outcome is None:
            continue
        e = t.outcome - t.goal
        path = np.vstack([t.track[:, 1:4], [[*t.outcome, float(t.track[-1, 3])]]])
        out.append(
            Rollout(
                theta=t.theta,
                clipped=False,
                outcome=t.outcome,
                e=e,
                cost=float(np.linalg.norm(e)),
                trajectory=path,
                info={"trial_id": t.trial_id, "bag": str(t.path)},
            )
        )
    return out


@dataclass
class BagsDataset:
    """What ``icpi collect --from-bags`` made of a folder of bags."""

    dataset: Any
    """The :class:`~icpi.manipulation.dataset.ImprovementDataset` (not saved)."""
    trials: list[RecordedTrial]
    """Every trial read, relabelled or not."""


def dataset_from_bags(
    directory: Path,
    task_id: str,
    rule: RestRule | None = None,
    frame_id: str = "task",
    seed: int = 0,
) -> BagsDataset:
    """Relabel the recorded trials of a bag folder into an improvement dataset.

    θ comes from each trial's request, the outcome from its recorded ball track
    (:func:`read_trial`); every ordered pair of usable trials is relabelled by the
    simulated datasets' own code (:func:`icpi.manipulation.dataset.dataset_from_rollouts`).
    Trials that did not end ``ok``, or whose track does not end at rest, are listed but
    never relabelled. Every bag is read before anything is made.

    Args:
        directory: The folder of ``trial_<id>/`` bags.
        task_id: The arm skill's task (``ball-roll-gc``, ``slide``, ``slide-gc``).
        rule: Rest rule for the outcome (default: :class:`RestRule`'s).
        frame_id: The task frame of the ball points.
        seed: Recorded as the dataset seed.

    Returns:
        The dataset and the trials.

    Raises:
        BagError: On a bag that cannot be read, or too few usable trials.
    """
    from icpi.manipulation.dataset import DatasetError, dataset_from_rollouts
    from icpi.robot.skill import skill_task

    try:
        task = skill_task(task_id)
    except ValueError as err:
        raise BagError(str(err)) from None
    trials = read_trials(
        directory, rule or RestRule(), task.theta_spec.dim, task.goal_dim, frame_id
    )
    rollouts = to_rollouts(trials)
    usable = [t for t in trials if t.relabel]
    if len(rollouts) < 2:
        raise BagError(
            f"{len(usable)} of {len(trials)} bags in {directory} hold a scored trial; hindsight"
            " relabelling needs at least two"
        )
    instance = task.make_instance(goal=usable[0].goal.tolist())
    try:
        dataset = dataset_from_rollouts(
            task, instance, rollouts, seed, f"icpi collect --task {task_id} --from-bags {directory}"
        )
    except DatasetError as err:
        raise BagError(f"{directory}: {err}") from None
    dataset.meta["source"] = "real-arm-bags"
    dataset.meta["physics_known"] = False
    dataset.meta["bags"] = {
        "used": [t.path.name for t in usable],
        "kept_not_relabelled": {t.path.name: t.usable for t in trials if not t.relabel},
    }
    return BagsDataset(dataset, trials)
