"""ICPI, as in the paper: the core loop configured for a parametric skill.

One iteration: take the last rollout's θ_i and relative error e_i, retrieve the k
examples of the improvement dataset nearest to [θ_i, e_i] (k-d tree, normalised
features), write them as ``θ e -> Δθ`` lines farthest first and nearest last, ask the model
to complete ``θ_i e_i ->``, parse and validate Δθ, and roll out θ_{i+1} = clip(θ_i + Δθ).
A bad answer is re-sampled, then replaced by the documented fallback (a local linear fit of
Δθ on the shown neighbours) and counted.

The method knows the task only through :class:`~icpi.envs.spec.SkillTask`, so the same
loop runs on the MuJoCo tasks, on the real arm and on a user's own task.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from icpi.core import (
    Attempt,
    Draw,
    Feedback,
    FirstValid,
    ImprovementLoop,
    LoopPieces,
    LoopPolicy,
    LoopState,
    NumericConsensus,
    NumericVectorParser,
    PromptTemplate,
    Proposal,
    Sampler,
    Selector,
)
from icpi.envs.spec import Rollout
from icpi.envs.spec import e_unit as task_e_unit
from icpi.errors import ConfigError
from icpi.llm.errors import MODEL_ERRORS
from icpi.manipulation.methods import register
from icpi.manipulation.methods.base import Method, MethodContext, MethodSettings, S, Vec
from icpi.manipulation.methods.knn import check_k
from icpi.manipulation.retrieval import (
    Example,
    Feature,
    Retriever,
    dataset_examples,
    linear_correction,
    relabel_own,
)
from icpi.manipulation.text import NumberFormat, example_line, query_line, situation_text

log = logging.getLogger(__name__)

#: Completion length of one Δθ answer (three signed integers fit in ~10 tokens).
ANSWER_MAX_TOKENS = 24


@dataclass(frozen=True)
class ICPISettings(MethodSettings):
    """Knobs of the ICPI loop (the paper's values are the defaults)."""

    k: int = 20
    """Neighbours retrieved from the dataset and shown in the prompt."""
    feature: Feature = "e"
    """Error feature: ``e`` (relative error, the paper's choice) or ``raw`` (s_T, τ_g)."""
    n_samples: int = 1
    """Completions per query; above 1 their element-wise median is taken (consensus)."""
    max_resamples: int = 1
    """Extra queries when no completion parses, before the fallback."""
    resample_temperature: float = 0.7
    """Temperature of a re-sample (a greedy model would only repeat its answer)."""
    online_relabel: bool = False
    """Add the run's own rollouts, relabelled in hindsight, to the retrieval set (their
    trajectories are then kept in the experience buffer, so a resume re-runs nothing)."""
    theta_steps: int = 100
    """Integer steps across each θ range in the prompt (100: percent; 1000: permille)."""
    e_unit: float | None = None
    """Outcome units per integer step of e in the prompt (0.01: centimetres of a metre-scale
    outcome; 0.001: millimetres); unset: the task's ``e_unit`` (default 0.01)."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")
        if self.max_resamples < 0:
            raise ValueError(f"max_resamples must be >= 0, got {self.max_resamples}")
        if self.theta_steps < 1:
            raise ValueError(f"theta_steps must be >= 1, got {self.theta_steps}")
        if self.e_unit is not None and not self.e_unit > 0:
            raise ValueError(f"e_unit must be > 0, got {self.e_unit}")


HEADER = "Parameters ({theta}) and error ({length}), then the correction ({theta}) that fixes it:"
SYSTEM = (
    "You improve a robot skill. Each example line gives the skill parameters ({theta}), "
    "the error of the outcome ({length}), and after '->' the correction of the parameters "
    "({theta}) that removes that error. Answer with the correction for the last line only: "
    "{d} integers separated by spaces, nothing else."
)


class ICPIText:
    """How ICPI writes its prompt: number format, example lines, the query, the template."""

    def __init__(
        self,
        ctx: MethodContext,
        where: Callable[[LoopState], Example],
        feature: Feature,
        theta_steps: int,
        e_unit: float | None,
    ) -> None:
        """Create the writer.

        Args:
            ctx: The run (θ bounds, prompt mode).
            where: The situation a loop state queries (its last rollout).
            feature: Error feature of the lines.
            theta_steps: Integer steps across each θ range.
            e_unit: Outcome units per integer step of e; ``None``: the task's.
        """
        if e_unit is None:
            e_unit = task_e_unit(ctx.task)
        spec = ctx.task.theta_spec
        self.feature: Feature = feature
        self.dim = spec.dim
        self.fmt = NumberFormat(
            low=tuple(spec.low), high=tuple(spec.high), theta_steps=theta_steps, e_unit=e_unit
        )
        chat = ctx.prompt_mode == "chat"
        units = {"theta": self.fmt.theta_unit, "length": self.fmt.length_unit, "d": self.dim}
        self.template = PromptTemplate(
            header="" if chat else HEADER.format(**units),
            example=lambda ex: self.line(ex),
            query=lambda q: str(q["query"]),
            system=SYSTEM.format(**units) if chat else None,
            chat=chat,
            query_fields=lambda state: {"query": self.query(where(state))},
        )
        self.parser = NumericVectorParser(
            self.dim, low=-theta_steps, high=theta_steps, any_line=chat
        )

    def situation(self, ex: Example) -> str:
        """The left-hand side ``θ e`` (or ``θ s_T τ_g``) of a line."""
        return situation_text(
            self.fmt, ex["theta"], ex["e"], ex["outcome"], ex["goal"], self.feature
        )

    def line(self, ex: Example) -> str:
        """One example line ``θ e -> Δθ``."""
        return example_line(self.situation(ex), self.fmt, ex["dtheta"])

    def query(self, where: Example) -> str:
        """The query line ``θ_i e_i ->``."""
        return query_line(self.situation(where))


class PromptedMethod(Method[S]):
    """What ``icpi`` and ``icpi+`` share: the ICPI prompt, the core loop, the buffer.

    The loop is assembled once (:meth:`assemble`); every attempt — θ0, a model or numeric
    proposal, the final re-run — goes to the experience buffer, from which a killed run
    resumes without re-running anything. A subclass writes :meth:`propose` (setting
    :attr:`proposal`), and :meth:`learn` / :meth:`record` where it keeps more state.
    """

    uses_dataset = True
    uses_model = True
    keeps_buffer = True
    e_unit_scale: ClassVar[float] = 1.0
    """The prompt's e unit when ``e_unit`` is unset, in units of the task's ``e_unit``."""

    def assemble(
        self,
        *,
        where: Callable[[LoopState], Example],
        sampler: Sampler,
        selector: Selector,
        max_resamples: int,
        fallback: Callable[[LoopState], Any] | None = None,
        to_action: Callable[[Any, LoopState], Any] | None = None,
    ) -> None:
        """Build the prompt writer and the loop.

        Args:
            where: The situation a loop state queries.
            sampler: The model.
            selector: Picks among the model's answers.
            max_resamples: Extra queries when no answer is valid.
            fallback: Action when none is valid after re-sampling.
            to_action: Turns the selected answer into θ.

        Raises:
            ConfigError: If k exceeds the dataset, or the dataset belongs to another task.
        """
        s: Any = self.settings
        ctx = self.ctx
        if self.dataset.task_id != ctx.task.task_id:
            raise ConfigError(
                f"dataset is for {self.dataset.task_id!r}, task is {ctx.task.task_id!r}"
            )
        check_k(s.k, len(self.dataset), self.name)
        self.goal = np.asarray(ctx.instance.goal, float)
        self.text = ICPIText(ctx, where, s.feature, s.theta_steps, self.prompt_e_unit())
        self.proposal: Proposal | None = None
        self.loop = ImprovementLoop(
            LoopPieces(
                context=self,  # build(): the examples shown
                prompt=self.text.template,
                sampler=sampler,
                parser=self.text.parser,
                selector=selector,
            ),
            LoopPolicy(
                n_samples=s.n_samples,
                max_resamples=max_resamples,
                model_errors=MODEL_ERRORS,  # a failed call re-samples, then falls back
                to_action=to_action,
                fallback=fallback,
            ),
            task={"task": ctx.task.task_id, "goal": self.goal.tolist()},
            buffer=ctx.buffer,
            seed=ctx.seed,
        )

    def proposal_of(
        self,
        state: LoopState,
        draw: Draw | None,
        theta: Vec,
        source: str,
        index: int | None,
        info: dict[str, Any],
        t0: float,
    ) -> Proposal:
        """The proposal of a θ chosen from the model's answers (``draw``) and others.

        Args:
            state: The loop state.
            draw: What the model answered (``None``: it was not asked).
            theta: The chosen θ.
            source: Where it came from (``model``, a numeric predictor's name).
            index: The model sample it came from (``None``: another source).
            info: The choice's details, kept in the attempt's ``selection``.
            t0: ``time.perf_counter()`` when the proposal began.

        Returns:
            The proposal, waiting for its rollout.
        """
        direct = Proposal.direct(state.iteration, theta.tolist(), source)
        if draw is not None:
            direct = dataclasses.replace(
                direct,
                valid=index is not None,
                prompt=draw.prompt,
                samples=draw.samples,
                parse_errors=[r.error if not r.ok else None for r in draw.results],
                llm=draw.llm,
                model_s=draw.model_s,
            )
        selection = {"index": index, **info}
        return dataclasses.replace(direct, selection=selection, propose_s=time.perf_counter() - t0)

    def prompt_e_unit(self) -> float:
        """The prompt's e unit: ``e_unit``, or the task's times :attr:`e_unit_scale`."""
        unit = self.settings.e_unit  # type: ignore[attr-defined]
        return float(unit) if unit is not None else task_e_unit(self.ctx.task) * self.e_unit_scale

    def to_theta(self, dtheta_int: ArrayLike, origin: ArrayLike) -> Vec:
        """θ of an answer: ``clip(origin + Δθ)``, Δθ in the prompt's integer steps.

        Args:
            dtheta_int: The correction, as the model writes it.
            origin: The θ it corrects.

        Returns:
            θ, inside the box.
        """
        return self.box.clip(np.asarray(origin, float) + self.text.fmt.int_to_dtheta(dtheta_int))

    def build(self, state: LoopState) -> list[Example]:
        """The examples of the prompt, farthest first (the loop's context builder)."""
        raise NotImplementedError

    def info(self, rollout: Rollout) -> dict[str, Any]:
        """What the buffer keeps of a rollout (its record)."""
        return rollout.to_record()

    def learn(self, rollout: Rollout, attempt: Attempt) -> None:
        """Update the method's own state with a finished attempt (none by default)."""

    def record(self, attempt: Attempt) -> dict[str, Any]:
        """The method's part of an iteration's record (see :func:`attempt_record`)."""
        return attempt_record(attempt)

    def observe(self, theta: Vec, rollout: Rollout, kind: str | None) -> dict[str, Any]:
        """Record the rollout as an attempt (appended to the buffer) and learn from it."""
        if kind is None:
            assert self.proposal is not None, "tell() without ask()"
            proposal = self.proposal
        else:
            proposal = Proposal.direct(len(self.loop.buffer), theta.tolist(), kind)
        self.proposal = None
        attempt = self.loop.complete(proposal, Feedback(-rollout.cost, self.info(rollout)))
        self.loop.buffer.append(attempt)
        self.learn(rollout, attempt)
        return self.record(attempt)

    def restore(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of the attempts already in the buffer (the buffer is the truth).

        Args:
            records: Ignored: a killed run's ``records.jsonl`` may lag its buffer.

        Returns:
            One record per finished attempt.
        """
        out = []
        for attempt in self.loop.buffer.attempts:
            rollout = Rollout.from_record(attempt.info)
            self.account(rollout)
            self.learn(rollout, attempt)
            kept = {k: v for k, v in attempt.info.items() if k != "trajectory"}
            out.append({"iteration": attempt.iteration, **kept, **self.record(attempt)})
        return out


@register
class ICPI(PromptedMethod[ICPISettings]):
    """ICPI on one task instance, assembled from the shared core's pieces."""

    name = "icpi"
    summary = "the paper's LLM loop: k nearest examples as text, the model completes Δθ"
    Settings = ICPISettings
    llm_defaults = {"sampling": {"max_tokens": ANSWER_MAX_TOKENS, "stop": ["\n"]}}

    @classmethod
    def sampler_params(cls, settings: MethodSettings, dim: int) -> dict[str, Any]:
        """A re-sample runs at ``resample_temperature`` (see :class:`ICPISettings`)."""
        assert isinstance(settings, ICPISettings)
        return {"resample_temperature": settings.resample_temperature}

    def __init__(self, ctx: MethodContext, settings: ICPISettings | None = None) -> None:
        """Assemble the loop (see :class:`~icpi.manipulation.methods.base.Method`).

        Raises:
            ConfigError: If k exceeds the dataset, or the dataset belongs to another task.
        """
        super().__init__(ctx, settings)
        s = self.settings
        self.retriever = Retriever(dataset_examples(self.dataset), feature=s.feature, k=s.k)
        assert ctx.sampler is not None
        self.assemble(
            where=self.where,
            sampler=ctx.sampler,
            selector=FirstValid() if s.n_samples == 1 else NumericConsensus("median"),
            max_resamples=s.max_resamples,
            fallback=self._fallback,
            to_action=lambda dtheta, state: self.to_theta(dtheta, self.where(state)["theta"]),
        )

    def _rollouts(self, state: LoopState) -> list[Rollout]:
        return [Rollout.from_record(a.info) for a in state.history if "theta" in a.info]

    def where(self, state: LoopState) -> Example:
        """The situation of the last rollout (the query)."""
        last = state.history[-1].info
        return {
            "theta": np.asarray(last["theta"], float),
            "e": np.asarray(last["e"], float),
            "outcome": np.asarray(last["outcome"], float),
            "goal": self.goal,
        }

    def build(self, state: LoopState) -> list[Example]:
        """The k nearest examples, farthest first (the context builder of the loop).

        Args:
            state: Loop state (the query is its last attempt).

        Returns:
            The examples to show (from the dataset, and from the run's own rollouts
            relabelled in hindsight when ``online_relabel`` is on).
        """
        if not state.history:
            return []
        own: list[Example] = []
        if self.settings.online_relabel:
            own = list(relabel_own(self.ctx.task, self.goal, self._rollouts(state)))
        return self.retriever.nearest(self.where(state), extra=own)

    def _fallback(self, state: LoopState) -> Vec:
        """Local linear fit of Δθ on the shown neighbours, evaluated at the query."""
        shown = self.build(state)
        where = self.where(state)
        dtheta = linear_correction(shown, where, self.settings.feature)
        log.info("iteration %d: no valid model answer, local linear fallback", state.iteration)
        return self.to_theta(self.text.fmt.dtheta_to_int(dtheta), where["theta"])

    def info(self, rollout: Rollout) -> dict[str, Any]:
        """The rollout's record, with its trajectory when ``online_relabel`` needs it."""
        info = rollout.to_record()
        if self.settings.online_relabel and rollout.trajectory is not None:
            # kept in the buffer: a resume (or the real arm) never re-runs a rollout
            info["trajectory"] = np.asarray(rollout.trajectory, float).tolist()
        return info

    def propose(self) -> Vec:
        """θ_i + Δθ from the model (or the fallback)."""
        self.proposal = self.loop.propose(self.loop.state())
        return np.asarray(self.proposal.action, float)


def attempt_record(attempt: Attempt) -> dict[str, Any]:
    """The method's part of an iteration's record: answer, sources, tokens, timings.

    Args:
        attempt: A finished attempt.

    Returns:
        ``source`` (initial, model, fallback), ``answer`` (the chosen completion),
        ``parse_errors``, ``prompt_tokens``, ``completion_tokens``, ``model_calls``,
        ``model_errors``, ``model_s`` and ``overhead_s``.
    """
    chosen = attempt.selection.get("index")
    return {
        "source": attempt.source,
        "answer": attempt.samples[chosen] if chosen is not None else None,
        "samples": len(attempt.samples),
        "parse_errors": [e for e in attempt.parse_errors if e is not None],
        "prompt_tokens": attempt.llm.get("prompt_tokens", 0),
        "completion_tokens": attempt.llm.get("completion_tokens", 0),
        "model_calls": attempt.llm.get("calls", 0),
        "model_errors": len(attempt.llm.get("errors", [])),
        "model_s": attempt.timing.get("model_s", 0.0),
        "overhead_s": attempt.timing.get("overhead_s", 0.0),
    }


__all__ = [
    "ANSWER_MAX_TOKENS",
    "ICPI",
    "ICPISettings",
    "ICPIText",
    "PromptedMethod",
    "attempt_record",
]
