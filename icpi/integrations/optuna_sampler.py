"""ICPI as an Optuna sampler: put ICPI next to Optuna's own samplers, in ordinary studies.

:class:`ICPISampler` follows OptunaHub's conventions (a ``SimpleBaseSampler`` with the
search space given up front): the search space is the task's θ box, one float parameter
per θ name. The objective rolls the skill out, returns the cost, and stores the outcome
vector in the trial's user attributes (``trial.set_user_attr("outcome", [x, y])``); the
sampler turns each finished trial back into a rollout (θ from the params, e = outcome −
goal) and asks any registered method — ``icpi+`` (the default of every front end),
``icpi``, a baseline, given as a method spec like ``icpi+[model=off]`` — for the next θ.
Studies then live in Optuna's storages (``sqlite:///study.db``) and show in
``optuna-dashboard``; a study reloaded from its storage resumes, since the sampler replays
its finished trials.

The sampler is strict where Optuna would silently fall back: the objective must suggest
every θ parameter with the task's bounds (:func:`objective_for` does), the study must
minimise the cost, and trials run one at a time — each θ depends on every finished
rollout, so a trial asked while another is running (``n_jobs=2``, a second process on the
study) is refused with an error that says so, instead of proposing the same θ twice.

Example::

    import optuna
    from icpi.integrations.optuna_sampler import ICPISampler, objective_for

    task = "slide-gc"
    sampler = ICPISampler(task, goal=(0.55, 0.1), method="icpi+[model=off]")
    study = optuna.create_study(sampler=sampler, storage="sqlite:///putt.db")
    study.optimize(objective_for(task, sampler.instance), n_trials=20)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from icpi.envs.spec import Instance, Rollout, SkillTask, check_rollout
from icpi.manipulation.config import DEFAULT_METHOD

try:
    import optuna
    from optunahub.samplers import SimpleBaseSampler
except ImportError as err:  # pragma: no cover - the message is the point
    raise ImportError(
        "the Optuna sampler needs optuna and optunahub: pip install 'icpi[optuna]'"
    ) from err

#: User attribute holding a trial's outcome vector.
OUTCOME_ATTR = "outcome"


class ICPISampler(SimpleBaseSampler):
    """An Optuna sampler that proposes θ with an icpi method (``icpi+`` by default)."""

    def __init__(
        self,
        task: str | SkillTask,
        goal: Sequence[float] | None = None,
        physics: Mapping[str, float] | None = None,
        method: str = DEFAULT_METHOD,
        settings: Mapping[str, Any] | None = None,
        dataset: str | None = None,
        llm: Any = None,
        model: Any = None,
        seed: int = 0,
        n_trials: int | None = None,
        outcome_attr: str = OUTCOME_ATTR,
    ) -> None:
        """Create the sampler of one task instance.

        Args:
            task: The task (a spec or an object, see :func:`icpi.envs.load_task`).
            goal: The goal [m]; ``None``: the instance drawn from ``seed``.
            physics: The instance's physics where known (a simulated task's missing ones
                take the middle of their range, as :meth:`~icpi.envs.base.Task.make_instance`
                does).
            method: The method spec proposing θ (``icpi+``, ``icpi[k=10]``, ``lknn20``, ...).
            settings: Its settings by name (beside the spec's own).
            dataset: Dataset directory (default: the task's shipped one).
            llm: LLM settings (an ``LLMConfig`` or its fields) of a model-using method.
            model: A sampler to use instead of a model client (tests, dry runs).
            seed: Seed of the method (and of the instance when ``goal`` is None).
            n_trials: The study's budget, when known (``icpi+`` re-runs its best θ last).
            outcome_attr: User attribute with each trial's outcome vector.
        """
        from icpi.api import task_of

        self.task = task_of(task)
        spec = self.task.theta_spec
        space: dict[str, optuna.distributions.BaseDistribution] = {
            name: optuna.distributions.FloatDistribution(lo, hi)
            for name, lo, hi in zip(spec.names, spec.low, spec.high, strict=True)
        }
        super().__init__(space, seed)
        self.theta_space = space
        if goal is None:
            self.instance = self.task.sample_instance(np.random.default_rng(seed))
        elif hasattr(self.task, "make_instance"):  # a simulation needs every parameter
            self.instance = self.task.make_instance(goal=goal, physics=physics)
        else:
            pairs = tuple(sorted((physics or {}).items()))
            self.instance = Instance(goal=tuple(map(float, goal)), physics=pairs)
        self.names = list(spec.names)
        self.outcome_attr = outcome_attr
        self._make: Callable[[], Any] = lambda: _method(
            self.task, self.instance, method, settings, dataset, llm, model, seed, n_trials
        )
        self._method: Any = self._make()  # a bad spec or setting is refused here
        self._told: list[int] = []
        self._lock = threading.Lock()

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        """The next θ: the method's answer after every finished trial of the study.

        Args:
            study: The study.
            trial: The trial being sampled.
            search_space: The θ box.

        Returns:
            ``{θ name: value}``.

        Raises:
            ValueError: If the study maximises, another of its trials is running, or a
                finished trial lacks a θ parameter or suggested one with other bounds.
        """
        if not search_space:
            return {}
        if study.directions != [optuna.study.StudyDirection.MINIMIZE]:
            raise ValueError(
                "ICPISampler minimises the task's cost: create the study with"
                " direction='minimize' (one objective, the cost)"
            )
        with self._lock:  # one θ at a time, also when Optuna runs trials on threads
            trials = study.get_trials(deepcopy=False)
            running = [
                t.number
                for t in trials
                if t.state == optuna.trial.TrialState.RUNNING and t.number != trial.number
            ]
            if running:
                raise ValueError(
                    f"ICPISampler proposes each θ from every finished trial, so trials run one"
                    f" at a time, but trial {running[0]} of this study is still running"
                    " (n_jobs > 1, or another process on the study): use n_jobs=1 and one"
                    " process per study; a trial left running by a killed process can be"
                    f" closed with study.tell({running[0]}, state=optuna.trial.TrialState.FAIL)"
                )
            finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
            told = [t.number for t in finished[: len(self._told)]]
            if self._method is None or told != self._told:
                self._method, self._told = self._make(), []  # a fresh or reloaded study
            for t in finished[len(self._told) :]:
                theta = self.theta_of(t)
                self._method.ask()
                self._method.tell(theta, self.rollout_of(theta, t))
                self._told.append(t.number)
            theta = self._method.ask()
        return dict(zip(self.names, map(float, theta), strict=True))

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        """Refuse a θ parameter suggested with other bounds than the task's θ box.

        Optuna asks here for a parameter outside the sampler's search space; for a θ
        parameter that means the objective's bounds differ from the task's, and Optuna
        would silently sample it at random instead of with the method.

        Raises:
            ValueError: For a θ parameter (the objective must use the task's bounds).
        """
        if param_name in self.names:
            raise ValueError(self._bounds_message(param_name, param_distribution))
        return super().sample_independent(study, trial, param_name, param_distribution)

    def _bounds_message(self, name: str, given: Any) -> str:
        def span(dist: Any) -> str:
            low, high = getattr(dist, "low", "?"), getattr(dist, "high", "?")
            return f"[{low}, {high}]" if type(dist) is type(self.theta_space[name]) else str(dist)

        return (
            f"the objective suggests {name} in {span(given)}, the task's θ box has"
            f" {span(self.theta_space[name])}: suggest every θ parameter with the task's bounds"
            " (objective_for does), or the sampler cannot propose it"
        )

    def theta_of(self, trial: optuna.trial.FrozenTrial) -> np.ndarray:
        """A finished trial's θ, in the task's order.

        Args:
            trial: The trial.

        Returns:
            θ.

        Raises:
            ValueError: If the trial lacks a θ parameter or suggested one with other bounds.
        """
        missing = [n for n in self.names if n not in trial.params]
        if missing:
            raise ValueError(
                f"trial {trial.number} suggested {sorted(trial.params)} but not"
                f" {', '.join(missing)}: the objective must suggest every θ parameter"
                f" ({', '.join(self.names)}) with the task's bounds (objective_for does)"
            )
        for name in self.names:
            if trial.distributions[name] != self.theta_space[name]:
                raise ValueError(self._bounds_message(name, trial.distributions[name]))
        return np.asarray([trial.params[n] for n in self.names], float)

    def rollout_of(self, theta: np.ndarray, trial: optuna.trial.FrozenTrial) -> Rollout:
        """A finished trial as a rollout (its outcome from the user attributes).

        Args:
            theta: The trial's θ.
            trial: The trial.

        Returns:
            The rollout (no trajectory).

        Raises:
            ValueError: If the trial lacks the outcome attribute.
        """
        if self.outcome_attr not in trial.user_attrs:
            raise ValueError(
                f"trial {trial.number} has no user attribute {self.outcome_attr!r}: the"
                f" objective must call trial.set_user_attr({self.outcome_attr!r}, outcome)"
            )
        outcome = np.asarray(trial.user_attrs[self.outcome_attr], float)
        e = (
            outcome - self.instance.goal_array
            if outcome.shape == (len(self.instance.goal),)
            else outcome
        )
        cost = float(trial.value) if trial.value is not None else float(np.linalg.norm(e))
        rollout = Rollout(theta=theta, clipped=False, outcome=outcome, e=e, cost=cost)
        return check_rollout(self.task.task_id, self.instance, rollout)


def _method(
    task: SkillTask,
    instance: Instance,
    method: str,
    settings: Mapping[str, Any] | None,
    dataset: str | None,
    llm: Any,
    model: Any,
    seed: int,
    n_trials: int | None,
) -> Any:
    """Build the method behind the sampler (in memory: the study is the record)."""
    from icpi.api import resolve
    from icpi.core import ExperienceBuffer
    from icpi.llm import LLMClient, LLMConfig
    from icpi.manipulation.methods import MethodContext, get_method
    from icpi.manipulation.run import initial_theta, load_dataset

    layer = {"task": task.task_id, "method": method, "seed": seed, "dataset": dataset}
    cfg, config = resolve({**layer, "settings": dict(settings or {})}, llm, "ICPISampler")
    cls = get_method(cfg.method)
    sampler = model
    if sampler is None and cls.needs_model(cfg.settings):
        from icpi.core.samplers import LLMSampler

        if config is None:
            config = LLMConfig.from_sources(defaults=cls.llm_defaults)
        params = cls.sampler_params(cfg.settings, task.theta_spec.dim)
        sampler = LLMSampler(LLMClient(config), **params)
    ctx = MethodContext(
        task=task,
        instance=instance,
        theta0=initial_theta(task, np.random.default_rng(seed), "center"),
        seed=seed,
        dataset=load_dataset(cfg, task) if cls.uses_dataset else None,
        sampler=sampler,
        buffer=ExperienceBuffer() if cls.keeps_buffer else None,
        iterations=n_trials,
    )
    return cls(ctx, cfg.settings)


def objective_for(
    task: str | SkillTask, instance: Instance
) -> Callable[[optuna.trial.Trial], float]:
    """An objective that rolls a task out: the cost, with the outcome stored on the trial.

    Args:
        task: The task.
        instance: The instance (e.g. ``sampler.instance``).

    Returns:
        ``objective(trial) -> cost``; works with any Optuna sampler (TPE too).
    """
    from icpi.api import task_of

    obj = task_of(task)
    spec = obj.theta_spec

    def objective(trial: optuna.trial.Trial) -> float:
        theta = [
            trial.suggest_float(n, lo, hi)
            for n, lo, hi in zip(spec.names, spec.low, spec.high, strict=True)
        ]
        rollout = check_rollout(obj.task_id, instance, obj.rollout(instance, theta))
        trial.set_user_attr(OUTCOME_ATTR, np.asarray(rollout.outcome, float).tolist())
        return float(rollout.cost)

    return objective


__all__ = ["OUTCOME_ATTR", "ICPISampler", "objective_for"]
