"""A toy pattern-completion improver: ICPI's configuration of the core on a linear task.

The task hides a 2-D linear map: outcome = A θ + b, error e = outcome − goal, cost = ‖e‖.
A dataset of (θ, e, Δθ*) examples is built without a model by hindsight relabelling of
random rollouts (pretend rollout b's outcome was the goal of rollout a). The improver then
shows the k examples nearest to the current (θ, e) as ``θ e -> Δθ`` lines and asks the
model to complete the query line ``θ_i e_i ->``. It is the shape of ICPI on a robot, small
enough for unit tests (with :class:`~icpi.core.samplers.ScriptedSampler`) and for the
embedded 135M model.

Pieces: :class:`~icpi.core.context.KNearest` + :class:`~icpi.core.prompts.PromptTemplate`
+ :class:`~icpi.core.parsing.NumericVectorParser` + :class:`~icpi.core.selectors.FirstValid`
or :class:`~icpi.core.selectors.NumericConsensus` + a :class:`~icpi.core.rewards.
CallableReward` returning −cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from icpi.core.buffer import ExperienceBuffer
from icpi.core.context import KNearest
from icpi.core.loop import ImprovementLoop, LoopPieces, LoopPolicy
from icpi.core.parsing import NumericVectorParser
from icpi.core.prompts import PromptTemplate
from icpi.core.records import LoopState
from icpi.core.rewards import CallableReward
from icpi.core.samplers import Sampler
from icpi.core.selectors import FirstValid, NumericConsensus, Selector

Vec = NDArray[np.float64]


@dataclass(frozen=True)
class ToyLinearTask:
    """Outcome = A θ + b on θ ∈ [low, high]²; the goal is reachable inside the box."""

    matrix: tuple[tuple[float, float], tuple[float, float]]
    """A, well conditioned."""
    offset: tuple[float, float]
    """b."""
    goal: tuple[float, float]
    """Target outcome."""
    low: float = -1.0
    """Lower bound of every θ component."""
    high: float = 1.0
    """Upper bound of every θ component."""

    @classmethod
    def sample(cls, seed: int) -> ToyLinearTask:
        """Draw a task instance.

        Args:
            seed: Seed of the instance.

        Returns:
            The task, with a goal reached by some θ in [−0.6, 0.6]².
        """
        rng = np.random.default_rng(seed)
        a = np.eye(2) + rng.uniform(-0.3, 0.3, (2, 2))
        b = rng.uniform(-0.2, 0.2, 2)
        goal = a @ rng.uniform(-0.6, 0.6, 2) + b
        return cls(
            matrix=((float(a[0, 0]), float(a[0, 1])), (float(a[1, 0]), float(a[1, 1]))),
            offset=(float(b[0]), float(b[1])),
            goal=(float(goal[0]), float(goal[1])),
        )

    def outcome(self, theta: ArrayLike) -> Vec:
        """Return A θ + b.

        Args:
            theta: Parameters.

        Returns:
            The outcome.
        """
        out: Vec = np.asarray(self.matrix) @ np.asarray(theta, float) + np.asarray(self.offset)
        return out

    def evaluate(self, theta: ArrayLike) -> tuple[float, dict[str, Any]]:
        """Roll θ out.

        Args:
            theta: Parameters.

        Returns:
            ``(-cost, {"e", "outcome", "cost"})``.
        """
        outcome = self.outcome(theta)
        e = outcome - np.asarray(self.goal)
        cost = float(np.linalg.norm(e))
        return -cost, {"e": e.tolist(), "outcome": outcome.tolist(), "cost": cost}


def hindsight_dataset(
    task: ToyLinearTask, n_rollouts: int = 20, max_examples: int = 300, seed: int = 0
) -> list[dict[str, Any]]:
    """Build (θ, e, Δθ*) examples from random rollouts by hindsight relabelling.

    For rollouts a ≠ b: e = outcome_a − outcome_b, Δθ* = θ_b − θ_a.

    Args:
        task: The task instance.
        n_rollouts: Random rollouts.
        max_examples: Keep at most this many pairs (a random subset).
        seed: Seed of the rollouts and the subset.

    Returns:
        Examples with keys ``theta``, ``e``, ``dtheta`` (lists of floats).
    """
    rng = np.random.default_rng(seed)
    thetas = rng.uniform(task.low, task.high, (n_rollouts, 2))
    outs = np.asarray([task.outcome(t) for t in thetas])
    pairs = [(a, b) for a in range(n_rollouts) for b in range(n_rollouts) if a != b]
    if len(pairs) > max_examples:
        keep = rng.choice(len(pairs), size=max_examples, replace=False)
        pairs = [pairs[i] for i in sorted(keep)]
    return [
        {
            "theta": thetas[a].tolist(),
            "e": (outs[a] - outs[b]).tolist(),
            "dtheta": (thetas[b] - thetas[a]).tolist(),
        }
        for a, b in pairs
    ]


def make_toy_improver(
    task: ToyLinearTask,
    sampler: Sampler,
    *,
    dataset: list[dict[str, Any]] | None = None,
    k: int = 10,
    n_samples: int = 1,
    precision: int = 2,
    buffer: ExperienceBuffer | None = None,
    seed: int = 0,
) -> ImprovementLoop:
    """Assemble the toy improver.

    Args:
        task: The task instance.
        sampler: The model (or a double).
        dataset: Examples; default :func:`hindsight_dataset` of the task.
        k: Neighbours shown.
        n_samples: Candidates per call; > 1 selects their element-wise median.
        precision: Decimals in the prompt.
        buffer: Experience buffer (resumes if it holds attempts).
        seed: Run seed.

    Returns:
        The loop; iteration 0 evaluates θ0 = 0 without a model call.
    """
    data = dataset if dataset is not None else hindsight_dataset(task, seed=seed)
    span = task.high - task.low

    def last_fields(state: LoopState) -> dict[str, Any]:
        last = state.history[-1]
        return {"theta": last.action, "e": last.info["e"]}

    def query(state: LoopState) -> list[float] | None:
        if not state.history:
            return None
        f = last_fields(state)
        return [*f["theta"], *f["e"]]

    context = KNearest(
        data, features=lambda ex: [*ex["theta"], *ex["e"]], query=query, k=k, nearest_last=True
    )
    prompt = PromptTemplate(
        header="Each line: parameters, error -> correction that removes the error.",
        example="{theta} {e} -> {dtheta}",
        query="{theta} {e} ->",
        precision=precision,
        query_fields=last_fields,
    )

    def to_action(dtheta: Vec, state: LoopState) -> list[float]:
        theta = np.asarray(state.history[-1].action, float)
        out: list[float] = np.clip(theta + dtheta, task.low, task.high).tolist()
        return out

    def fallback(state: LoopState) -> list[float]:
        neighbours = context.build(state)[-5:]  # KNN-5: mean correction of the 5 nearest
        mean_d = np.mean([ex["dtheta"] for ex in neighbours], axis=0)
        return to_action(mean_d, state)

    selector: Selector = FirstValid() if n_samples == 1 else NumericConsensus("median")
    return ImprovementLoop(
        LoopPieces(
            context=context,
            prompt=prompt,
            sampler=sampler,
            parser=NumericVectorParser(2, low=-span, high=span),
            selector=selector,
            reward=CallableReward(task.evaluate),
        ),
        LoopPolicy(
            n_samples=n_samples,
            to_action=to_action,
            fallback=fallback,
            initial_action=lambda state: [0.0, 0.0],
        ),
        task={"goal": list(task.goal)},
        buffer=buffer,
        seed=seed,
    )
