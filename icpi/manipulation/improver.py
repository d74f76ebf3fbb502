"""ICPI for dynamic manipulation: the core loop configured for a parametric skill.

One iteration: take the last rollout's θ_i and relative error e_i, retrieve the k
examples of the improvement dataset nearest to [θ_i, e_i] (k-d tree, normalised
features), write them as ``θ e -> Δθ`` lines farthest first and nearest last, ask the model
to complete ``θ_i e_i ->``, parse and validate Δθ, and roll out θ_{i+1} = clip(θ_i + Δθ).
A bad answer is re-sampled, then replaced by the documented fallback (a local linear fit of
Δθ on the shown neighbours) and counted.

This module knows the task only through :class:`SkillTask` (a rollout function, θ bounds
and an outcome function), so the same loop runs on the MuJoCo tasks and on the real arm.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from icpi.core import (
    Attempt,
    CallableReward,
    ExperienceBuffer,
    Feedback,
    FirstValid,
    ImprovementLoop,
    KNearest,
    LoopState,
    NumericConsensus,
    NumericVectorParser,
    PromptTemplate,
    Proposal,
    Sampler,
    Selector,
)
from icpi.manipulation.dataset import ImprovementDataset
from icpi.manipulation.predictors import local_linear
from icpi.manipulation.text import (
    Feature,
    NumberFormat,
    example_line,
    query_line,
    situation_text,
)

log = logging.getLogger(__name__)

Vec = NDArray[np.float64]
Example = Mapping[str, Any]


class SkillRollout(Protocol):
    """What a rollout must report (a MuJoCo :class:`~icpi.envs.base.Rollout` does)."""

    theta: Vec
    clipped: bool
    outcome: Vec
    e: Vec
    cost: float
    trajectory: Vec


class SkillTask(Protocol):
    """The task interface ICPI needs, shared by simulation and the real arm."""

    @property
    def task_id(self) -> str:
        """Short task id (matches the dataset's)."""

    @property
    def theta_spec(self) -> Any:
        """θ names, units, bounds and ``validate``."""

    def outcome(self, trajectory: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Outcome of a path for a goal."""

    def sample_instance(self, rng: np.random.Generator) -> Any:
        """Draw an instance (the real arm returns its configured goal)."""

    def rollout(self, instance: Any, theta: Any) -> SkillRollout:
        """Run θ once on an instance."""


@dataclass(frozen=True)
class ICPISettings:
    """Knobs of the ICPI loop (the paper's values are the defaults)."""

    k: int = 20
    """Neighbours retrieved from the dataset and shown in the prompt."""
    feature: Feature = "e"
    """Error feature: ``e`` (relative error, the paper's choice) or ``raw`` (s_T, τ_g)."""
    n_samples: int = 1
    """Completions per query; above 1 their element-wise median is taken (consensus)."""
    max_resamples: int = 1
    """Extra queries when no completion parses, before the fallback."""
    online_relabel: bool = False
    """Add the run's own rollouts, relabelled in hindsight, to the retrieval set (their
    trajectories are then kept in the experience buffer, so a resume re-runs nothing)."""
    chat: bool = False
    """Chat prompt (system + user message) instead of plain completion."""
    theta_steps: int = 100
    """Integer steps across each θ range in the prompt (100: percent)."""
    e_unit: float = 0.01
    """Metres per integer step of e in the prompt (0.01: centimetres)."""


HEADER = "Parameters ({theta}) and error ({length}), then the correction ({theta}) that fixes it:"
SYSTEM = (
    "You improve a robot skill. Each example line gives the skill parameters ({theta}), "
    "the error of the outcome ({length}), and after '->' the correction of the parameters "
    "({theta}) that removes that error. Answer with the correction for the last line only: "
    "{d} integers separated by spaces, nothing else."
)


class ICPIImprover:
    """ICPI on one task instance, assembled from the shared core's pieces."""

    def __init__(
        self,
        task: SkillTask,
        instance: Any,
        dataset: ImprovementDataset,
        sampler: Sampler,
        theta0: ArrayLike,
        settings: ICPISettings | None = None,
        buffer: ExperienceBuffer | None = None,
        seed: int = 0,
    ) -> None:
        """Assemble the loop.

        Args:
            task: The task (simulated or real).
            instance: The task instance to improve on (its goal is ``instance.goal``).
            dataset: Improvement examples of the task.
            sampler: The model (``LLMSampler``) or a double (``ScriptedSampler``).
            theta0: Initial θ, evaluated at iteration 0 without a model call.
            settings: Loop settings.
            buffer: Experience buffer (resumes from it when it holds attempts).
            seed: Run seed (every model call's seed derives from it).

        Raises:
            ValueError: If the dataset belongs to another task or θ0 is malformed.
        """
        self.settings = settings or ICPISettings()
        s = self.settings
        if dataset.task_id != task.task_id:
            raise ValueError(f"dataset is for {dataset.task_id!r}, task is {task.task_id!r}")
        self.task = task
        self.instance = instance
        self.goal = np.asarray(instance.goal, float)
        spec = task.theta_spec
        self.dim = spec.dim
        self.theta0, _ = spec.validate(theta0)
        self.fmt = NumberFormat(
            low=tuple(spec.low), high=tuple(spec.high), theta_steps=s.theta_steps, e_unit=s.e_unit
        )
        self.examples = [self._example(dataset, i) for i in range(len(dataset))]
        self._pending: Proposal | None = None
        self.context = KNearest(
            self.examples,
            features=self._features,
            query=self._query,
            k=s.k,
            history_view=None,
            scale="std",
            nearest_last=True,
        )
        units = {"theta": self.fmt.theta_unit, "length": self.fmt.length_unit, "d": self.dim}
        self.prompt = PromptTemplate(
            header="" if s.chat else HEADER.format(**units),
            example=lambda ex: str(ex["line"]),
            query=lambda q: str(q["query"]),
            system=SYSTEM.format(**units) if s.chat else None,
            chat=s.chat,
            query_fields=self._query_fields,
        )
        selector: Selector = FirstValid() if s.n_samples == 1 else NumericConsensus("median")
        steps = s.theta_steps
        self.loop = ImprovementLoop(
            context=self,  # this object adds online relabelling on top of KNearest
            prompt=self.prompt,
            sampler=sampler,
            parser=NumericVectorParser(self.dim, low=-steps, high=steps, any_line=s.chat),
            selector=selector,
            reward=CallableReward(self._evaluate),
            n_samples=s.n_samples,
            max_resamples=s.max_resamples,
            to_action=self._to_action,
            fallback=self._fallback,
            initial_action=lambda state: self.theta0.tolist(),
            task={"task": task.task_id, "goal": self.goal.tolist()},
            buffer=buffer,
            seed=seed,
        )

    # ------------------------------------------------------------------ examples
    def _example(self, ds: ImprovementDataset, i: int) -> dict[str, Any]:
        ex = {
            "theta": ds.theta[i],
            "e": ds.e[i],
            "outcome": ds.outcome[i],
            "goal": ds.goal[i],
            "dtheta": ds.dtheta[i],
        }
        return self._with_line(ex)

    def _with_line(self, ex: dict[str, Any]) -> dict[str, Any]:
        situation = situation_text(
            self.fmt, ex["theta"], ex["e"], ex["outcome"], ex["goal"], self.settings.feature
        )
        ex["line"] = example_line(situation, self.fmt, ex["dtheta"])
        return ex

    def _features(self, ex: Example) -> Vec:
        if self.settings.feature == "e":
            return np.concatenate([ex["theta"], ex["e"]])
        return np.concatenate([ex["theta"], ex["outcome"], ex["goal"]])

    def _last(self, state: LoopState) -> dict[str, Any]:
        last = state.history[-1]
        return {
            "theta": np.asarray(last.info["theta"], float),
            "e": np.asarray(last.info["e"], float),
            "outcome": np.asarray(last.info["outcome"], float),
            "goal": self.goal,
        }

    def _query(self, state: LoopState) -> Vec | None:
        return self._features(self._last(state)) if state.history else None

    def _query_fields(self, state: LoopState) -> dict[str, str]:
        last = self._last(state)
        situation = situation_text(
            self.fmt, last["theta"], last["e"], last["outcome"], self.goal, self.settings.feature
        )
        return {"query": query_line(situation)}

    # ------------------------------------------------------------------ context
    def build(self, state: LoopState) -> list[Example]:
        """The k nearest examples, farthest first (the context builder of the loop).

        Args:
            state: Loop state (the query is its last attempt).

        Returns:
            The examples to show.
        """
        shown = self.context.build(state)
        if not self.settings.online_relabel or len(state.history) < 2:
            return shown
        q = self._query(state)
        assert q is not None
        pool = list(shown) + self._relabelled_history(state)
        scale = self.context.scale
        dist = [float(np.linalg.norm((self._features(ex) - q) / scale)) for ex in pool]
        order = sorted(range(len(pool)), key=lambda i: (dist[i], i))[: self.settings.k]
        return [pool[i] for i in reversed(order)]

    def _relabelled_history(self, state: LoopState) -> list[dict[str, Any]]:
        """Hindsight examples from pairs of the run's own rollouts (a ≠ b, b's outcome as goal)."""
        own = [a for a in state.history if "theta" in a.info]
        out = []
        for a in own:
            theta_a = np.asarray(a.info["theta"], float)
            path_a = np.asarray(a.info["trajectory"], float)
            for b in own:
                if b is a:
                    continue
                goal_b = np.asarray(b.info["outcome"], float)
                outcome_a = self.task.outcome(path_a, goal_b)
                ex = {
                    "theta": theta_a,
                    "e": outcome_a - goal_b,
                    "outcome": outcome_a,
                    "goal": goal_b,
                    "dtheta": np.asarray(b.info["theta"], float) - theta_a,
                }
                out.append(self._with_line(ex))
        return out

    # ------------------------------------------------------------------ actions
    def _to_action(self, dtheta_int: ArrayLike, state: LoopState) -> list[float]:
        theta = self._last(state)["theta"]
        proposed = theta + self.fmt.int_to_dtheta(dtheta_int)
        clipped, _ = self.task.theta_spec.validate(proposed)
        out: list[float] = clipped.tolist()
        return out

    def _fallback(self, state: LoopState) -> list[float]:
        """Local linear fit of Δθ on the shown neighbours, evaluated at the query."""
        shown = self.build(state)
        q = self._query(state)
        assert q is not None
        feats = np.asarray([self._features(ex) for ex in shown])
        dtheta = local_linear(feats, np.asarray([ex["dtheta"] for ex in shown]), q)
        log.info("iteration %d: no valid model answer, local linear fallback", state.iteration)
        return self._to_action(self.fmt.dtheta_to_int(dtheta), state)

    def _evaluate(self, action: Any) -> tuple[float, dict[str, Any]]:
        """Reward of :meth:`ImprovementLoop.step` (the loop used on its own)."""
        result = self.task.rollout(self.instance, action)
        return -result.cost, self._info(result)

    def _info(self, result: SkillRollout) -> dict[str, Any]:
        info = {
            "theta": np.asarray(result.theta, float).tolist(),
            "clipped": bool(result.clipped),
            "e": np.asarray(result.e, float).tolist(),
            "outcome": np.asarray(result.outcome, float).tolist(),
            "cost": float(result.cost),
        }
        if self.settings.online_relabel:  # kept in the buffer: a resume re-runs nothing
            info["trajectory"] = np.asarray(result.trajectory, float).tolist()
        return info

    # ------------------------------------------------------------------ ask / tell
    def ask(self) -> Vec:
        """Next θ: θ0 first, then θ_i + Δθ from the model (or the fallback).

        Returns:
            θ, inside the box (asking again before :meth:`tell` returns the same θ).
        """
        if self._pending is None:
            self._pending = self.loop.propose(self.loop.state())
        return np.asarray(self._pending.action, float)

    def tell(self, theta: Vec, rollout: SkillRollout) -> dict[str, Any]:
        """Record the rollout of the asked θ as an attempt (appended to the buffer).

        Args:
            theta: The θ asked.
            rollout: Its rollout.

        Returns:
            The attempt's record (see :func:`record_of`).

        Raises:
            RuntimeError: If nothing was asked.
        """
        if self._pending is None:
            raise RuntimeError("tell() without ask()")
        proposal, self._pending = self._pending, None
        attempt = self.loop.complete(proposal, Feedback(-rollout.cost, self._info(rollout)))
        self.loop.buffer.append(attempt)
        return record_of(attempt)

    def restore(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of the attempts already in the buffer (the buffer is the truth).

        Args:
            records: Ignored: a killed run's ``records.jsonl`` may lag its buffer.

        Returns:
            One record per finished attempt.
        """
        return [record_of(a) for a in self.loop.buffer.attempts]


def record_of(attempt: Attempt) -> dict[str, Any]:
    """The per-iteration record of a run directory's ``records.jsonl``.

    Args:
        attempt: A finished ICPI attempt.

    Returns:
        ``iteration``, ``theta``, ``e``, ``cost``, ``outcome``, ``clipped``, ``source``
        (initial, model, fallback), ``dtheta_text`` (the chosen answer), token counts and
        timings.
    """
    chosen = attempt.selection.get("index")
    return {
        "iteration": attempt.iteration,
        "theta": attempt.info.get("theta"),
        "e": attempt.info.get("e"),
        "cost": attempt.info.get("cost"),
        "outcome": attempt.info.get("outcome"),
        "clipped": attempt.info.get("clipped"),
        "source": attempt.source,
        "answer": attempt.samples[chosen] if chosen is not None else None,
        "parse_errors": [e for e in attempt.parse_errors if e is not None],
        "prompt_tokens": attempt.llm.get("prompt_tokens", 0),
        "completion_tokens": attempt.llm.get("completion_tokens", 0),
        "model_calls": attempt.llm.get("calls", 0),
        "model_s": attempt.timing.get("model_s", 0.0),
        "overhead_s": attempt.timing.get("overhead_s", 0.0),
    }
