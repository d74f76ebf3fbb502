"""Headless rendering of rollouts to frames and GIFs.

Choose the OpenGL backend with :func:`icpi.envs.gl.choose_gl_backend` before MuJoCo is
first imported (importing this module imports MuJoCo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from icpi.envs.base import Instance, Task


def render_rollout(
    task: Task,
    instance: Instance,
    theta: np.ndarray,
    fps: int = 25,
    width: int = 320,
    height: int = 240,
) -> list[np.ndarray]:
    """Replay a rollout and render it from the scene's ``overview`` camera.

    Args:
        task: The task.
        instance: The instance.
        theta: Skill parameters.
        fps: Frames per simulated second.
        width: Frame width [px].
        height: Frame height [px].

    Returns:
        RGB frames (height × width × 3, uint8).
    """
    import mujoco

    result = task.rollout(instance, theta, record_states=True)
    assert result.states is not None
    model = task.model(instance)
    data = mujoco.MjData(model)
    stride = max(1, round(1.0 / (fps * task.timestep)))
    frames = []
    with mujoco.Renderer(model, height, width) as renderer:
        for state in result.states[::stride]:
            mujoco.mj_setState(model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera="overview")
            # Shadows and reflections triple the cost of software (llvmpipe) rendering.
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            frames.append(renderer.render().copy())
    return frames


def write_gif(frames: list[np.ndarray], path: Path, fps: int = 25) -> Path:
    """Write frames as a looping GIF.

    Args:
        frames: RGB frames.
        path: Output file.
        fps: Playback rate.

    Returns:
        The path written.
    """
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    return path
