"""Improvement methods behind one ask/tell interface, and the driver that runs them.

Every method proposes θ with :meth:`Improver.ask` and learns from the rollout with
:meth:`Improver.tell`; all of them start from the same θ0 (iteration 0), keep to the θ
box, and get the same rollout budget. Method ids:

- ``icpi``: the LLM loop (:class:`~icpi.manipulation.improver.ICPIImprover`);
- ``random``: random shooting, uniform in the θ box;
- ``bo``: Bayesian optimisation (``bayesian-optimization``: GP + expected improvement)
  on the normalised θ box, maximising −cost;
- ``knn5``: θ + mean Δθ* of the 5 dataset examples nearest to [θ, e];
- ``lknn20``: θ + a local linear model of Δθ* fitted on the 20 nearest examples;
- ``cmaes``: CMA-ES (``cma``) on the normalised θ box, started at θ0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from icpi.core import KNearest, LoopState
from icpi.manipulation.dataset import ImprovementDataset
from icpi.manipulation.improver import SkillRollout, SkillTask
from icpi.manipulation.predictors import knn_mean, local_linear
from icpi.manipulation.text import Feature

log = logging.getLogger(__name__)

Vec = NDArray[np.float64]
METHODS = ("icpi", "random", "bo", "knn5", "lknn20", "cmaes")
DATASET_METHODS = ("icpi", "knn5", "lknn20")


class Improver(Protocol):
    """Ask/tell interface shared by ICPI and the baselines."""

    def ask(self) -> Vec:
        """Next θ to roll out (asking twice without a tell returns the same θ)."""

    def tell(self, theta: Vec, rollout: SkillRollout) -> dict[str, Any]:
        """Learn from the rollout of θ; return the method's part of the record."""

    def restore(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rebuild the state of a killed run from its records; return the kept records."""


def rollout_record(iteration: int, rollout: SkillRollout) -> dict[str, Any]:
    """The task part of a ``records.jsonl`` line.

    Args:
        iteration: Rollout index (θ0 is 0).
        rollout: The rollout.

    Returns:
        ``iteration``, ``theta``, ``clipped``, ``e``, ``outcome``, ``cost``.
    """
    return {
        "iteration": iteration,
        "theta": np.asarray(rollout.theta, float).tolist(),
        "clipped": bool(rollout.clipped),
        "e": np.asarray(rollout.e, float).tolist(),
        "outcome": np.asarray(rollout.outcome, float).tolist(),
        "cost": float(rollout.cost),
    }


def recorded_rollout(record: dict[str, Any]) -> SkillRollout:
    """A rollout rebuilt from its record (no trajectory), to replay a killed run."""
    out: SkillRollout = SimpleNamespace(
        theta=np.asarray(record["theta"], float),
        clipped=bool(record["clipped"]),
        e=np.asarray(record["e"], float),
        outcome=np.asarray(record["outcome"], float),
        cost=float(record["cost"]),
        trajectory=None,
    )
    return out


def drive(
    improver: Improver,
    task: SkillTask,
    instance: Any,
    iterations: int,
    done: Sequence[dict[str, Any]] = (),
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run a method on one instance for ``iterations`` rollouts in total.

    Args:
        improver: The method.
        task: The task (simulated or real).
        instance: The instance.
        iterations: Rollouts in total, θ0 included.
        done: Records of a killed run already replayed into the improver with
            :meth:`Improver.restore`: their rollouts are kept, not redone.
        on_record: Called with each new record as soon as its rollout is told.

    Returns:
        All records, resumed ones included.
    """
    done = list(done)
    for i in range(len(done), iterations):
        theta = improver.ask()
        rollout = task.rollout(instance, theta)
        record = {**rollout_record(i, rollout), **improver.tell(theta, rollout)}
        log.info("iteration %d: cost %.4f m", i, record["cost"])
        done.append(record)
        if on_record is not None:
            on_record(record)
    return done


class _Replaying:
    """Restore by re-asking and re-telling: exact for a method deterministic in its seed."""

    def ask(self) -> Vec:
        raise NotImplementedError

    def tell(self, theta: Vec, rollout: SkillRollout) -> dict[str, Any]:
        raise NotImplementedError

    def restore(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replay the recorded rollouts through ask/tell.

        Args:
            records: Records of the killed run.

        Returns:
            The records kept (all of them).

        Raises:
            ValueError: If the method would not have asked the recorded θ (another run).
        """
        for rec in records:
            theta = self.ask()
            if not np.allclose(theta, rec["theta"], rtol=0, atol=1e-12):
                raise ValueError(
                    f"record {rec['iteration']} has θ {rec['theta']}, the method asks"
                    f" {theta.tolist()}: the records belong to another run"
                )
            self.tell(theta, recorded_rollout(rec))
        return [dict(r) for r in records]


class _Box:
    """θ0, the θ box and its normalisation to the unit cube."""

    def __init__(self, task: SkillTask, theta0: Vec) -> None:
        spec = task.theta_spec
        self.spec = spec
        self.low = np.asarray(spec.low, float)
        self.span = np.asarray(spec.high, float) - self.low
        self.theta0, _ = spec.validate(theta0)

    def to_unit(self, theta: Vec) -> Vec:
        out: Vec = (np.asarray(theta, float) - self.low) / self.span
        return out

    def from_unit(self, z: Vec) -> Vec:
        theta, _ = self.spec.validate(self.low + np.clip(z, 0.0, 1.0) * self.span)
        out: Vec = theta
        return out


class RandomShooting(_Replaying):
    """θ0, then θ uniform in the box."""

    def __init__(self, task: SkillTask, theta0: Vec, seed: int) -> None:
        """Create the method.

        Args:
            task: The task (θ box).
            theta0: First θ.
            seed: Seed of the draws.
        """
        self.box = _Box(task, theta0)
        self.rng = np.random.default_rng([seed, 17])
        self.pending: Vec | None = None
        self.told = 0

    def ask(self) -> Vec:
        """Next θ."""
        if self.pending is None:
            self.pending = (
                self.box.theta0
                if self.told == 0
                else self.box.from_unit(self.rng.random(self.box.spec.dim))
            )
        return self.pending

    def tell(self, theta: Vec, rollout: SkillRollout) -> dict[str, Any]:
        """Count the rollout."""
        self.pending = None
        self.told += 1
        return {"source": "initial" if self.told == 1 else "random"}


class BayesianOptimisation(_Replaying):
    """θ0, then GP expected-improvement proposals on the unit cube (maximising −cost)."""

    def __init__(self, task: SkillTask, theta0: Vec, seed: int, xi: float = 0.01) -> None:
        """Create the method.

        Args:
            task: The task (θ box).
            theta0: First θ.
            seed: Seed of the GP and acquisition optimiser.
            xi: Exploration margin of expected improvement.
        """
        from bayes_opt import BayesianOptimization
        from bayes_opt.acquisition import ExpectedImprovement

        self.box = _Box(task, theta0)
        self.names = [f"x{i}" for i in range(self.box.spec.dim)]
        self.opt = BayesianOptimization(
            f=None,
            pbounds={n: (0.0, 1.0) for n in self.names},
            acquisition_function=ExpectedImprovement(xi=xi),
            random_state=seed,
            verbose=0,
            allow_duplicate_points=True,
        )
        self.pending: Vec | None = None
        self.told = 0

    def ask(self) -> Vec:
        """Next θ."""
        if self.pending is None:
            if self.told == 0:
                self.pending = self.box.theta0
            else:
                z = self.opt.suggest()
                self.pending = self.box.from_unit(np.array([float(z[n]) for n in self.names]))
        return self.pending

    def tell(self, theta: Vec, rollout: SkillRollout) -> dict[str, Any]:
        """Register −cost at θ."""
        z = self.box.to_unit(theta)
        self.opt.register(dict(zip(self.names, z.tolist(), strict=True)), -float(rollout.cost))
        self.pending = None
        self.told += 1
        return {"source": "initial" if self.told == 1 else "bo"}


class CMAES(_Replaying):
    """CMA-ES on the unit cube, started at θ0 (evaluated first like every method)."""

    def __init__(self, task: SkillTask, theta0: Vec, seed: int, sigma0: float = 0.2) -> None:
        """Create the method.

        Args:
            task: The task (θ box).
            theta0: Mean of the first population (and the first θ evaluated).
            seed: Seed of CMA-ES.
            sigma0: Initial step size, in units of the box width.
        """
        import cma

        self.box = _Box(task, theta0)
        self.es = cma.CMAEvolutionStrategy(
            self.box.to_unit(self.box.theta0).tolist(),
            sigma0,
            {"bounds": [0.0, 1.0], "seed": seed + 1, "verbose": -9},
        )
        self.queue: list[Vec] = []
        self.results: list[tuple[Vec, float]] = []
        self.told = 0

    def ask(self) -> Vec:
        """Next θ (a member of the current population)."""
        if self.told == 0:
            return self.box.theta0
        if not self.queue:
            self.queue = [np.asarray(x, float) for x in self.es.ask()]
        return self.box.from_unit(self.queue[0])

    def tell(self, theta: Vec, rollout: SkillRollout) -> dict[str, Any]:
        """Store the cost; update CMA-ES when the population is complete."""
        self.told += 1
        if self.told == 1:
            return {"source": "initial"}
        z = self.queue.pop(0)
        self.results.append((z, float(rollout.cost)))
        if not self.queue:
            xs, costs = zip(*self.results, strict=True)
            self.es.tell(list(xs), list(costs))
            self.results = []
        return {"source": "cmaes"}


class NeighbourCorrection(_Replaying):
    """θ + a Δθ predicted from the dataset examples nearest to [θ, e] (KNN-5, LKNN-20)."""

    def __init__(
        self,
        task: SkillTask,
        theta0: Vec,
        dataset: ImprovementDataset,
        k: int,
        linear: bool,
        feature: Feature = "e",
    ) -> None:
        """Create the method.

        Args:
            task: The task (θ box).
            theta0: First θ.
            dataset: Improvement examples of the task.
            k: Neighbours.
            linear: Fit a local linear model (LKNN) instead of averaging (KNN).
            feature: Retrieval feature, as in ICPI.
        """
        self.box = _Box(task, theta0)
        self.linear = linear
        self.feature = feature
        self.goal: Vec | None = None
        examples = [
            {
                "theta": dataset.theta[i],
                "e": dataset.e[i],
                "outcome": dataset.outcome[i],
                "goal": dataset.goal[i],
                "dtheta": dataset.dtheta[i],
            }
            for i in range(len(dataset))
        ]
        self._query: Vec | None = None
        self.knn = KNearest(examples, features=self._features, query=lambda state: self._query, k=k)
        self.last: SkillRollout | None = None
        self.pending: Vec | None = None
        self.name = f"{'lknn' if linear else 'knn'}{k}"

    def _features(self, ex: Mapping[str, Any]) -> Vec:
        if self.feature == "e":
            return np.concatenate([ex["theta"], ex["e"]])
        return np.concatenate([ex["theta"], ex["outcome"], ex["goal"]])

    def ask(self) -> Vec:
        """Next θ."""
        if self.pending is not None:
            return self.pending
        if self.last is None:
            self.pending = self.box.theta0
            return self.pending
        last = self.last
        goal = np.asarray(last.outcome, float) - np.asarray(last.e, float)
        q = {"theta": last.theta, "e": last.e, "outcome": last.outcome, "goal": goal}
        self._query = self._features(q)
        shown = self.knn.build(LoopState(iteration=0, history=[], task={}))
        dtheta = np.asarray([ex["dtheta"] for ex in shown])
        if self.linear:
            feats = np.asarray([self._features(ex) for ex in shown])
            step = local_linear(feats, dtheta, self._query)
        else:
            step = knn_mean(dtheta)
        self.pending, _ = self.box.spec.validate(np.asarray(last.theta, float) + step)
        return self.pending

    def tell(self, theta: Vec, rollout: SkillRollout) -> dict[str, Any]:
        """Remember the rollout (its θ and e are the next query)."""
        first = self.last is None
        self.last = rollout
        self.pending = None
        return {"source": "initial" if first else self.name}
