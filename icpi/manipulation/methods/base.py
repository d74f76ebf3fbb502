"""What an improvement method is: a registered ask/tell class with typed settings.

Every method — ICPI, ``icpi+`` and each baseline — is one class in one module of this
package, registered by :func:`register` under its id. The CLI (``icpi run --method``), the
benchmark (``icpi bench --methods``), the ROS driver and the README's method table all
read the registry (:mod:`icpi.manipulation.methods`), so a new baseline is one new file.

A method proposes θ with :meth:`Method.ask`, learns from the rollout with
:meth:`Method.tell` (returning its part of the iteration's record), and rebuilds the
state of a killed run with :meth:`Method.restore`. :func:`drive` runs any method on any
:class:`~icpi.envs.spec.SkillTask` — the MuJoCo tasks, the real arm, a user's own.

What is not about the method is done here, alike for every method: the first rollout is
θ0 (``source`` ``initial``), and with ``final_best`` the last rollout of the budget re-runs
the best θ so far (``source`` ``best``), so a run ends on the best skill it found. A method
writes only :meth:`Method.propose` (θ after at least one rollout) and
:meth:`Method.observe` (learn from one).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from icpi.config import STRICT
from icpi.envs.spec import Instance, Rollout, SkillTask, ThetaSpec, check_rollout
from icpi.errors import ConfigError

if TYPE_CHECKING:
    from icpi.core import ExperienceBuffer, Sampler
    from icpi.manipulation.dataset import ImprovementDataset

log = logging.getLogger(__name__)

Vec = NDArray[np.float64]


@dataclass(frozen=True)
class MethodSettings:
    """Base class of every method's settings (and the settings of a method without any)."""

    __pydantic_config__ = STRICT

    legacy: ClassVar[Mapping[str, Any]] = {}
    """Settings added after runs were first written, each with the value that reproduces a
    run written before it existed: a run directory without one resumes as if it had that
    value (see :meth:`icpi.core.rundir.RunDir.open`)."""

    final_best: bool = False
    """Spend the last rollout of the budget re-running the best θ so far, so that the run
    ends on the best skill it found (any method; needs the budget, which runs, benchmarks
    and the Optuna sampler with ``n_trials`` know)."""


@dataclass
class MethodContext:
    """What a method is built from: the same for every method of a comparison."""

    task: SkillTask
    """The task (θ box, outcome, rollouts)."""
    instance: Instance
    """The instance improved on (goal, physics)."""
    theta0: Vec
    """First θ, shared by every method."""
    seed: int
    """Run seed (the method's random draws and every model call derive from it)."""
    dataset: ImprovementDataset | None = None
    """Improvement examples (methods with ``uses_dataset``)."""
    sampler: Sampler | None = None
    """The model (methods with ``uses_model``)."""
    buffer: ExperienceBuffer | None = None
    """Experience buffer in the run directory (methods that keep one)."""
    prompt_mode: Literal["completion", "chat"] = "completion"
    """How the model is prompted (the LLM configuration's ``mode``)."""
    iterations: int | None = None
    """The run's budget of rollouts, when known (a method may plan its last one)."""


S = TypeVar("S", bound=MethodSettings)


class Method(ABC, Generic[S]):
    """An improvement method on one task instance (see the module docstring).

    Subclasses name their settings class twice: as the type argument (``Method[ICPISettings]``,
    for type checkers) and as :attr:`Settings` (for the loaders).
    """

    name: ClassVar[str]
    """Method id (``icpi``, ``lknn20``, ...): the key of the registry."""
    summary: ClassVar[str]
    """One line for the README's method table."""
    Settings: ClassVar[type[MethodSettings]] = MethodSettings
    """Its settings dataclass (flags, config files, method specs and ROS params load it)."""
    uses_dataset: ClassVar[bool] = False
    """Whether it needs the improvement dataset."""
    uses_model: ClassVar[bool] = False
    """Whether it queries a language model (see :meth:`needs_model`)."""
    keeps_buffer: ClassVar[bool] = False
    """Whether it keeps an experience buffer in the run directory (and resumes from it)."""
    llm_defaults: ClassVar[Mapping[str, Any]] = {}
    """LLM settings it needs unless the user sets them (e.g. a short ``max_tokens``)."""

    def __init__(self, ctx: MethodContext, settings: S | None = None) -> None:
        """Create the method for one run.

        Args:
            ctx: Task, instance, θ0, seed, and the dataset / model / buffer it uses.
            settings: An instance of :attr:`Settings`; ``None``: the defaults.

        Raises:
            ConfigError: If the dataset or model it needs is missing, or a setting does not
                fit the task or dataset.
        """
        self.ctx = ctx
        given = settings if settings is not None else self.Settings()
        if not isinstance(given, self.Settings):
            raise TypeError(f"{self.name} takes {self.Settings.__name__}, got {settings!r}")
        self.settings: S = cast(S, given)
        if self.uses_dataset and ctx.dataset is None:
            raise ConfigError(f"method {self.name} needs an improvement dataset")
        if self.needs_model(self.settings) and ctx.sampler is None:
            raise ConfigError(f"method {self.name} needs a language model (a sampler)")
        self.box = Box(ctx.task.theta_spec, ctx.theta0)
        self.told = 0  # rollouts told so far
        self.best: tuple[float, Vec] | None = None  # (cost, θ) of the best rollout so far
        self._pending: tuple[Vec, str | None] | None = None

    @classmethod
    def needs_model(cls, settings: MethodSettings) -> bool:
        """Whether runs with these settings query a language model.

        Args:
            settings: The method's settings.

        Returns:
            :attr:`uses_model` (a method with a model switch overrides this).
        """
        return cls.uses_model

    @classmethod
    def sampler_params(cls, settings: MethodSettings, dim: int) -> dict[str, Any]:
        """Per-call arguments of the model sampler for these settings.

        Args:
            settings: The method's settings.
            dim: θ's dimension.

        Returns:
            :class:`~icpi.core.samplers.LLMSampler` keyword arguments (e.g. a re-sample
            temperature, a decoding grammar in ``extra_body``); none by default.
        """
        return {}

    @property
    def dataset(self) -> ImprovementDataset:
        """The improvement dataset (methods with ``uses_dataset``)."""
        assert self.ctx.dataset is not None
        return self.ctx.dataset

    # ------------------------------------------------------------------ ask / tell
    def ask(self) -> Vec:
        """Next θ: θ0 first, the best θ so far last (``final_best``), :meth:`propose` between.

        Returns:
            θ (asking twice without a tell returns the same θ).
        """
        if self._pending is None:
            if self.told == 0:
                self._pending = (self.box.theta0, "initial")
            elif self.rerun_due():
                assert self.best is not None
                self._pending = (self.best[1], "best")
            else:
                self._pending = (np.asarray(self.propose(), float), None)
        return self._pending[0].copy()

    def tell(self, theta: Vec, rollout: Rollout) -> dict[str, Any]:
        """Learn from the rollout of the asked θ.

        Args:
            theta: The θ asked.
            rollout: Its rollout.

        Returns:
            The method's part of the iteration's record (``source`` at least: ``initial``,
            ``best``, or what :meth:`observe` names, by default the method's id).
        """
        if self._pending is None:
            self.ask()
        assert self._pending is not None
        kind, self._pending = self._pending[1], None
        self.account(rollout)
        part = self.observe(theta, rollout, kind)
        return {**part, "source": kind} if kind else {"source": self.name, **part}

    def rerun_due(self) -> bool:
        """Whether the next rollout is the re-run of the best θ (``final_best``)."""
        budget = self.ctx.iterations
        final = budget is not None and self.told == budget - 1
        return bool(self.settings.final_best) and final and self.best is not None

    def account(self, rollout: Rollout) -> None:
        """Count a rollout and keep the best (what :meth:`ask` needs for θ0 and the re-run).

        Args:
            rollout: The rollout.
        """
        self.told += 1
        if self.best is None or rollout.cost < self.best[0]:
            self.best = (float(rollout.cost), np.asarray(rollout.theta, float))

    @abstractmethod
    def propose(self) -> Vec:
        """θ to roll out next, after at least one rollout (θ0 and the re-run are not asked)."""

    @abstractmethod
    def observe(self, theta: Vec, rollout: Rollout, kind: str | None) -> dict[str, Any]:
        """Learn from the rollout of θ.

        Args:
            theta: The θ asked.
            rollout: Its rollout.
            kind: ``initial`` (θ0), ``best`` (the final re-run), or ``None`` (a θ of
                :meth:`propose`).

        Returns:
            The method's part of the record (its ``source`` for a proposed θ, when it is
            not the method's id).
        """

    def restore(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rebuild the state of a killed run by replaying its records through ask/tell.

        Exact for a method that is deterministic in its seed; methods that keep an
        experience buffer override this and trust the buffer instead.

        Args:
            records: Records of the killed run (``records.jsonl``).

        Returns:
            The records kept (all of them).

        Raises:
            RunDirError: If the method would not have asked the recorded θ (another run).
        """
        from icpi.errors import RunDirError

        for rec in records:
            theta = self.ask()
            if not np.allclose(theta, rec["theta"], rtol=0, atol=1e-12):
                raise RunDirError(
                    f"record {rec['iteration']} has θ {rec['theta']}, {self.name} asks"
                    f" {theta.tolist()}: the records belong to another run"
                )
            self.tell(theta, Rollout.from_record(rec))
        return [dict(r) for r in records]


class Box:
    """θ0, the θ box and its normalisation to the unit cube."""

    def __init__(self, spec: ThetaSpec, theta0: Vec) -> None:
        """Create the box.

        Args:
            spec: θ spec of the task.
            theta0: First θ (validated and clipped).
        """
        self.spec = spec
        self.low = np.asarray(spec.low, float)
        self.high = np.asarray(spec.high, float)
        self.span = self.high - self.low
        self.theta0, _ = spec.validate(theta0)

    def to_unit(self, theta: Vec) -> Vec:
        """θ in the unit cube."""
        out: Vec = (np.asarray(theta, float) - self.low) / self.span
        return out

    def from_unit(self, z: Vec) -> Vec:
        """θ from the unit cube (clipped to the box)."""
        theta, _ = self.spec.validate(self.low + np.clip(z, 0.0, 1.0) * self.span)
        out: Vec = theta
        return out

    def clip(self, theta: Vec) -> Vec:
        """θ clipped to the box (validated: finite, right shape)."""
        out, _ = self.spec.validate(theta)
        return np.asarray(out, float)


def drive(
    method: Method[Any],
    task: SkillTask,
    instance: Instance,
    iterations: int,
    done: Sequence[dict[str, Any]] = (),
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run a method on one instance for ``iterations`` rollouts in total.

    Args:
        method: The method.
        task: The task (simulated, real or a user's own).
        instance: The instance.
        iterations: Rollouts in total, θ0 included.
        done: Records of a killed run already replayed into the method with
            :meth:`Method.restore`: their rollouts are kept, not redone.
        on_record: Called with each new record as soon as its rollout is told.

    Returns:
        All records, resumed ones included: ``iteration``, the rollout's record
        (:meth:`~icpi.envs.spec.Rollout.to_record`) and the method's part.

    Raises:
        TaskError: If the task returns an invalid rollout (a non-finite cost, an e of the
            wrong length); the records before it are kept.
    """
    records = list(done)
    for i in range(len(records), iterations):
        theta = method.ask()
        rollout = check_rollout(task.task_id, instance, task.rollout(instance, theta))
        record = {"iteration": i, **rollout.to_record(), **method.tell(theta, rollout)}
        log.info("iteration %d: cost %.4f m (%s)", i, record["cost"], record.get("source"))
        records.append(record)
        if on_record is not None:
            on_record(record)
    return records
