"""The Gymnasium face of a task: one episode is one improvement run on one instance."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from icpi.envs.base import SUCCESS_TOLERANCE, Instance, Rollout, Task

# Bound of each component of e in the observation space [m]; no task's rollout can move
# its tracked point this far within its horizon.
E_LIMIT = 20.0


class TaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """Gymnasium env around a :class:`~icpi.envs.base.Task`.

    ``reset`` draws an instance (goal and hidden physics) from the env's random generator,
    seeded only through ``reset(seed=...)``; ``options`` may pin them with the keys
    ``goal`` (sequence of floats) and ``physics`` (mapping name → value). ``step(θ)`` runs
    one whole rollout. The observation is ``[goal, e_last]`` with ``e_last`` zero before
    the first step. Reward is ``−cost``; the episode terminates when the cost is under
    ``SUCCESS_TOLERANCE`` and is truncated after 20 steps (registration's time limit).
    The action space is θ in physical units (not normalised to [−1, 1]).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}
    task_class: ClassVar[type[Task]]

    def __init__(self, render_mode: str | None = None, width: int = 320, height: int = 240):
        """Create the env.

        Args:
            render_mode: ``None`` or ``"rgb_array"`` (a frame of the current state).
            width: Rendered frame width [px].
            height: Rendered frame height [px].
        """
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unsupported render_mode {render_mode!r}; use None or 'rgb_array'")
        self.task = self.task_class()
        self.render_mode = render_mode
        self._size = (height, width)
        spec = self.task.theta_spec
        self.action_space = gym.spaces.Box(spec.low_array, spec.high_array, dtype=np.float64)
        # The goal part spans the goal region (the fixed goal of a fixed-goal task lies in it).
        e_limit = np.full(self.task.goal_dim, E_LIMIT)
        self.observation_space = gym.spaces.Box(
            np.concatenate([self.task.goal_low, -e_limit]),
            np.concatenate([self.task.goal_high, e_limit]),
            dtype=np.float64,
        )
        self.instance: Instance | None = None
        self.last_rollout: Rollout | None = None
        self._renderer: mujoco.Renderer | None = None
        self._render_data: mujoco.MjData | None = None
        self._render_model: mujoco.MjModel | None = None

    def _obs(self) -> np.ndarray:
        assert self.instance is not None
        e = self.last_rollout.e if self.last_rollout is not None else np.zeros(self.task.goal_dim)
        return np.concatenate([self.instance.goal_array, e]).astype(np.float64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a task instance.

        Args:
            seed: Seeds the env's random generator (only source of randomness).
            options: Optional ``goal`` and ``physics`` to pin instead of sampling.

        Returns:
            The observation and an info dict with ``goal`` and ``physics``.
        """
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"goal", "physics"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; use 'goal', 'physics'")
        self.instance = self.task.sample_instance(
            self.np_random, goal=options.get("goal"), physics=options.get("physics")
        )
        self.last_rollout = None
        return self._obs(), {
            "goal": self.instance.goal_array,
            "physics": self.instance.physics_dict,
        }

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Run one whole rollout of θ = ``action``.

        Args:
            action: Skill parameters θ; clipped to the bounds when outside (flagged in
                ``info["theta_clipped"]``).

        Returns:
            Observation, reward (−cost), terminated, truncated (always False here; the
            registered time limit truncates), and info with ``theta``, ``theta_clipped``,
            ``outcome``, ``e``, ``cost``, ``reward_cost``, ``trajectory``, ``goal`` and
            ``physics``.

        Raises:
            RuntimeError: If called before ``reset``.
            ValueError: If θ has the wrong shape or is not finite.
        """
        if self.instance is None:
            raise RuntimeError("call reset() before step()")
        result = self.task.rollout(self.instance, action)
        self.last_rollout = result
        reward_cost = -result.cost
        info = {
            "theta": result.theta,
            "theta_clipped": result.clipped,
            "outcome": result.outcome,
            "e": result.e,
            "cost": result.cost,
            "reward_cost": reward_cost,
            "trajectory": result.trajectory,
            "goal": self.instance.goal_array,
            "physics": self.instance.physics_dict,
        }
        terminated = result.cost < SUCCESS_TOLERANCE
        return self._obs(), float(reward_cost), terminated, False, info

    def render(self) -> np.ndarray | None:
        """Render the scene at the end of the last rollout (or at rest before any).

        Returns:
            An RGB frame (height × width × 3, uint8), or None without a render mode.
        """
        if self.render_mode is None or self.instance is None:
            return None
        model = self.task.model(self.instance)
        if self._renderer is None or self._render_data is None or self._render_model is not model:
            self.close()
            self._renderer = mujoco.Renderer(model, *self._size)
            self._render_data = mujoco.MjData(model)
            self._render_model = model
        data = self._render_data
        if self.last_rollout is not None:
            replay = self.task.rollout(self.instance, self.last_rollout.theta, record_states=True)
            assert replay.states is not None
            state = replay.states[-1]
            mujoco.mj_setState(model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        mujoco.mj_forward(model, data)
        self._renderer.update_scene(data, camera="overview")
        frame: np.ndarray = self._renderer.render()
        return frame

    def close(self) -> None:
        """Release the renderer."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
            self._render_data = None
