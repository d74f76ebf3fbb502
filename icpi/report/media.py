"""Re-simulated rollout clips: MP4 (H.264) or GIF, as data URIs, with a cost check.

A clip replays one recorded rollout of a run headless: the task is rebuilt from the spec
the run recorded (a shipped id or your own ``path/file.py:Class``, see
:func:`icpi.envs.load_task`), the instance from the recorded goal and physics
(``config.json``), θ from the record (``records.jsonl``); the rollout's cost is recomputed
and compared with the recorded one (bit-identical on the machine that made the run), and
the frames come from :func:`icpi.envs.render.render_rollout`. A task that cannot render
(your own, without a MuJoCo scene of the shipped kind) gets a plot of the re-simulated
path of its tracked point instead (:func:`icpi.report.figures.trajectory_plot`). Choose
the OpenGL backend (:func:`icpi.envs.gl.choose_gl_backend`) before this module first
imports MuJoCo.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from icpi.report.rundata import ReportError

log = logging.getLogger(__name__)

VideoFormat = Literal["auto", "mp4", "gif"]
# Clip geometry: small frames keep the page small (an MP4 clip is ~10 kB).
CLIP_WIDTH = 320  # px, a multiple of 16 (H.264 macroblocks)
CLIP_HEIGHT = 240  # px
CLIP_FPS = 25  # frames per simulated second (played in real time)
GIF_FRAME_STRIDE = 2  # GIFs keep every 2nd frame (they are ~15x larger than MP4)
POSTER_QUALITY = 80  # JPEG quality of the still shown before playing


@dataclass(frozen=True)
class Clip:
    """One re-simulated rollout, ready to embed."""

    mime: str
    """``video/mp4``, ``image/gif``, or ``image/svg+xml`` for a trajectory plot."""
    data_uri: str
    """The clip as a data URI."""
    poster_uri: str
    """The last frame (the outcome) as a JPEG data URI."""
    cost: float
    """Re-simulated cost [m]."""
    frames: int
    """Number of frames (0 for a trajectory plot)."""

    @property
    def is_plot(self) -> bool:
        """Whether this is a plot of the path (the task cannot render), not a clip."""
        return self.mime == "image/svg+xml"


class ClipError(RuntimeError):
    """A rollout that cannot be re-simulated (the message says why)."""


class ClipLimit(ClipError):
    """A new clip was asked for after the clip budget was spent."""


def data_uri(mime: str, payload: bytes) -> str:
    """Encode bytes as a data URI.

    Args:
        mime: Media type.
        payload: Content.

    Returns:
        ``data:<mime>;base64,...``.
    """
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def encode_mp4(frames: Sequence[np.ndarray], fps: int) -> bytes:
    """Encode frames as an H.264 MP4 (yuv420p, fast start) with imageio's ffmpeg plugin.

    Args:
        frames: RGB frames of equal size (multiples of 16 px).
        fps: Playback rate.

    Returns:
        The file's bytes.

    Raises:
        ImportError: Without ``imageio-ffmpeg`` (``pip install 'icpi[report]'``).
        OSError: If ffmpeg fails.
    """
    import imageio.v3 as iio
    import imageio_ffmpeg  # noqa: F401  (fail early, with a clear name, when missing)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        iio.imwrite(
            path,
            np.stack(frames),
            plugin="FFMPEG",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=16,
            output_params=["-movflags", "+faststart", "-crf", "28"],
        )
        return path.read_bytes()


def encode_gif(frames: Sequence[np.ndarray], fps: int) -> bytes:
    """Encode frames as a looping GIF (every :data:`GIF_FRAME_STRIDE`-th frame).

    Args:
        frames: RGB frames.
        fps: Frame rate of ``frames``.

    Returns:
        The file's bytes.
    """
    import imageio.v3 as iio

    kept = np.stack(frames[::GIF_FRAME_STRIDE])
    payload: bytes = iio.imwrite(
        "<bytes>", kept, extension=".gif", duration=1000.0 * GIF_FRAME_STRIDE / fps, loop=0
    )
    return payload


def encode_jpeg(frame: np.ndarray) -> bytes:
    """Encode one frame as JPEG.

    Args:
        frame: RGB frame.

    Returns:
        The file's bytes.
    """
    import imageio.v3 as iio

    payload: bytes = iio.imwrite("<bytes>", frame, extension=".jpg", quality=POSTER_QUALITY)
    return payload


class ClipMaker:
    """Re-simulates and encodes rollouts, caching tasks and identical rollouts."""

    def __init__(self, video_format: VideoFormat = "auto", max_clips: int | None = None) -> None:
        """Create the maker.

        Args:
            video_format: ``mp4``, ``gif``, or ``auto`` (MP4, falling back to GIF when it
                cannot be written, e.g. without ``imageio-ffmpeg``).
            max_clips: Distinct rollouts to render at most (``None``: no limit); a clip
                already rendered is reused without counting again.
        """
        self.video_format: VideoFormat = video_format
        self.max_clips = max_clips
        self.fallback_reason: str | None = None
        self.render_error: str | None = None
        self._tasks: dict[str, Any] = {}
        self._clips: dict[tuple[Any, ...], Clip] = {}

    def task(self, task_id: str) -> Any:
        """The task object of the spec a run recorded (built once).

        Args:
            task_id: Task spec: a shipped id, ``module:Class`` or ``path/file.py:Class``.

        Returns:
            The task.

        Raises:
            ClipError: If no task can be built from it (the message says why).
        """
        if task_id not in self._tasks:
            from icpi.envs import load_task

            try:
                self._tasks[task_id] = load_task(task_id)
            except Exception as err:  # a user's module may raise anything on import
                raise ClipError(f"task {task_id!r} cannot be rebuilt: {err}") from err
        return self._tasks[task_id]

    @property
    def rendered(self) -> int:
        """Distinct clips rendered so far."""
        return len(self._clips)

    def clip(self, task_id: str, instance: dict[str, Any], theta: Sequence[float]) -> Clip:
        """Re-simulate one rollout and encode it (once per distinct rollout).

        Args:
            task_id: Task id.
            instance: The run's recorded instance: ``goal`` and ``physics``.
            theta: The recorded θ.

        Returns:
            The clip.

        Raises:
            ClipError: If the task, instance or θ cannot be rebuilt (e.g. a real-arm run
                without recorded physics).
            ClipLimit: If the clip is new and ``max_clips`` clips were rendered already.
        """
        physics = instance.get("physics")
        if not isinstance(physics, dict):
            raise ClipError("the run records no simulated physics (a real-arm run?)")
        key = (
            task_id,
            tuple(instance.get("goal") or ()),
            tuple(sorted(physics.items())),
            tuple(theta),
        )
        if key in self._clips:
            return self._clips[key]
        if self.max_clips is not None and len(self._clips) >= self.max_clips:
            raise ClipLimit(f"not rendered: the clip limit ({self.max_clips}) was reached")
        task = self.task(task_id)
        try:
            inst = _instance(task, instance.get("goal"), physics)
            rollout = task.rollout(inst, theta)
            cost = float(rollout.cost)
        except (ValueError, TypeError) as err:
            raise ClipError(
                f"the recorded instance or θ is not valid for {task_id}: {err}"
            ) from err
        if can_render(task):
            frames = self._render(task, inst, theta)
            mime, payload = self._encode(frames)
            clip = Clip(
                mime=mime,
                data_uri=data_uri(mime, payload),
                poster_uri=data_uri("image/jpeg", encode_jpeg(frames[-1])),
                cost=cost,
                frames=len(frames),
            )
        else:
            clip = self._plot(task, inst, rollout, cost)
        self._clips[key] = clip
        return clip

    @staticmethod
    def _plot(task: Any, instance: Any, rollout: Any, cost: float) -> Clip:
        from icpi.report.figures import trajectory_plot

        if rollout.trajectory is None or len(rollout.trajectory) == 0:
            raise ClipError(f"the task {task.task_id!r} cannot render and returns no trajectory")
        uri = trajectory_plot(
            rollout.trajectory, instance.goal, rollout.outcome, title=f"{task.task_id}: path"
        )
        return Clip(mime="image/svg+xml", data_uri=uri, poster_uri=uri, cost=cost, frames=0)

    def _render(self, task: Any, instance: Any, theta: Sequence[float]) -> list[np.ndarray]:
        """Frames of the rollout (the shipped tasks' renderer; GL errors become a note)."""
        if self.render_error is None:
            from icpi.envs.render import render_rollout

            try:
                return render_rollout(
                    task,
                    instance,
                    np.asarray(theta, float),
                    fps=CLIP_FPS,
                    width=CLIP_WIDTH,
                    height=CLIP_HEIGHT,
                )
            except Exception as err:  # OpenGL errors come in many types (FatalError, ...)
                self.render_error = (
                    f"rendering failed ({type(err).__name__}: {err}); set MUJOCO_GL=egl or"
                    " osmesa before running icpi report"
                )
                log.warning("%s", self.render_error)
        raise ClipError(self.render_error)

    def _encode(self, frames: Sequence[np.ndarray]) -> tuple[str, bytes]:
        if self.video_format != "gif" and self.fallback_reason is None:
            try:
                return "video/mp4", encode_mp4(frames, CLIP_FPS)
            except (ImportError, OSError, RuntimeError, ValueError) as err:
                if self.video_format == "mp4":
                    raise ReportError(
                        f"cannot write MP4 ({err}); install imageio-ffmpeg"
                        " (pip install 'icpi[report]') or use --video-format gif"
                    ) from err
                self.fallback_reason = f"MP4 could not be written ({err}); clips are GIFs"
                log.warning("%s", self.fallback_reason)
        return "image/gif", encode_gif(frames, CLIP_FPS)


def can_render(task: Any) -> bool:
    """Whether a task renders clips (a MuJoCo scene with the shipped tasks' members).

    Args:
        task: The task.

    Returns:
        True for the shipped tasks (``model(instance)``, ``timestep``, recorded states).
    """
    from icpi.envs.base import Task

    return isinstance(task, Task)


def _instance(task: Any, goal: Any, physics: dict[str, Any]) -> Any:
    """The recorded instance: the task's own builder (validated) or a plain one."""
    make = getattr(task, "make_instance", None)
    if callable(make):
        return make(goal=goal, physics=physics)
    from icpi.envs.spec import Instance

    if goal is None:
        raise ValueError("the run records no goal")
    return Instance(
        goal=tuple(float(g) for g in goal),
        physics=tuple(sorted((str(k), float(v)) for k, v in physics.items())),
    )
