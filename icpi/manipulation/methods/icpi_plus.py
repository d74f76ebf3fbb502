"""icpi+: the model proposes, the numbers propose, the evidence disposes.

Beside the paper-faithful ``icpi``, on the same dataset, budget, instances and ask/tell
interface. Each iteration:

1. **Candidates.** From the *best* rollout so far (not the last), the prompt of ICPI asks
   the model for ``n_samples`` corrections Δθ (one request with ``n``; a server that
   ignores ``n`` is topped up, and llama.cpp reuses the processed prompt); their
   element-wise median is the model's candidate, their disagreement its evidence. The
   numeric candidates join it: the local-Jacobian step
   (:mod:`~icpi.manipulation.methods.jacobian`), the linear-KNN step of ``lknn20``, and
   ``perturbations`` variations of the Jacobian step. Every step is offered alike: whole
   (clipped to the θ box) and shortened to the trust region. A θ already rolled out is
   never offered again on a deterministic task.
2. **An arbiter** (:mod:`~icpi.manipulation.arbiter`): the outcome model's prediction of
   each candidate's error, uncertain in proportion to the step and to the fit's residual,
   is combined with the candidate source's own claim (its step reaches the goal),
   uncertain in proportion to that source's record of claimed vs realised errors; the
   candidate of highest expected improvement is rolled out and its source (``model``,
   ``jacobian``, ``lknn20``, ``perturbation``) recorded. A model whose answers come true
   earns rollouts from the first; one whose answers fail loses them.
3. **No drift.** The trust region shrinks after a worse rollout and grows after a good
   prediction; the last rollout of the budget re-runs the best θ (``final_best``).
4. **Escape.** Every candidate steps from the best θ, and where the outcome is rough
   (near the best θ a change in θ's fourth decimal can move it by centimetres) every step
   from it can fail while the local fit keeps predicting small gains. After ``escape``
   rollouts in a row without a new best, while the best is short of the task's success
   threshold, the next rollout is the ``lknn20`` method's own step from the last rollout,
   on the dataset alone (no model call, no judging), until a rollout beats the best.
   Below the threshold the budget polishes instead.
5. **Answers that parse.** ``constrain`` turns on constrained decoding where the backend
   has it: a GBNF grammar ending in the line terminator for llama.cpp (the embedded
   model), vLLM's ``structured_outputs`` grammar, or a JSON schema (OpenAI, Ollama; chat).

The prompt writes θ in permille of each range and e in millimetres by default (the
paper's percent/centimetre prompt cannot say a correction finer than 1 % of a range, nor
an error below 5 mm; ``theta_steps=100;e_unit=0.01;zoom=false`` restores it). **Zoom:**
whatever the units, a fixed grid caps what a model can say: once the best error reads as
a few units, the correction it needs is finer than one θ step, and a perfect model can only
answer the grid point it already stands on. So the units follow the best cost: each
tenfold fall of the best cost below ten e units refines θ and e tenfold (θ in 1/10⁴ of each
range and e in tenths of a millimetre, then 1/10⁵ and hundredths, at most
:data:`ZOOM_MAX` times; :func:`zoom_level`). **Sensitivity:** θ's units are refined
further, until one θ step moves the outcome model's prediction by at most a tenth of an
e unit (:func:`theta_level`, with a margin of ten: the model is fitted where the search stands,
and the outcome is often more sensitive where it goes). On slide-gc one permille of the
push duration moves the puck by up to 25 mm near θ*, so a perfect answer on the permille
grid lands millimetres off. The prompt says its units, as always.

Ablations: ``icpi+[model=off]`` (the same arbiter and trust region, numeric candidates
only: no model call at all), ``icpi+[judge=off]`` (the model's candidate wins whenever
one parses, the Jacobian step otherwise), ``icpi+[zoom=false]`` (units that do not follow
the best cost), ``icpi+[sensitivity=false]`` (θ's units only as fine as e's) and
``icpi+[escape=0]`` (never escape).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from icpi.core import Attempt, FirstValid, LoopState, SampleBatch
from icpi.core.prompts import Prompt
from icpi.envs.spec import Rollout, success_threshold
from icpi.manipulation.arbiter import (
    CLAIMING,
    Arbiter,
    ArbiterSettings,
    Candidate,
    choose,
    decision_record,
    fit_residual,
)
from icpi.manipulation.local_model import LocalJacobian
from icpi.manipulation.methods import register
from icpi.manipulation.methods.base import MethodContext, MethodSettings, Vec
from icpi.manipulation.methods.icpi import (
    ANSWER_MAX_TOKENS,
    ICPIText,
    PromptedMethod,
    attempt_record,
)
from icpi.manipulation.methods.jacobian import JacobianSettings, LocalSearch, observed
from icpi.manipulation.retrieval import linear_correction

log = logging.getLogger(__name__)

Constrain = Literal["off", "gbnf", "vllm", "json"]

#: Two θ closer than this (normalised) are the same θ.
SAME = 1e-9


def among(z: Vec, taken: list[Vec]) -> bool:
    """Whether the normalised θ ``z`` is one of ``taken`` (within :data:`SAME`)."""
    return bool(taken) and float(np.min(np.linalg.norm(np.asarray(taken) - z, axis=1))) <= SAME


def too_short(step: Vec, reference: Vec, share: float) -> bool:
    """Whether a step is shorter than ``share`` × a reference step (``short_step``).

    Args:
        step: The model's whole step (normalised θ).
        reference: The ``lknn20`` step from the same θ (normalised θ).
        share: The share (0: no step is too short).

    Returns:
        ‖step‖ < share · ‖reference‖.
    """
    return float(np.linalg.norm(step)) < share * float(np.linalg.norm(reference))


#: The prompt's units are refined tenfold while the best error reads fewer integers.
ZOOM_READABLE = 10
#: At most this many tenfold refinements (from permille and millimetres: 1/10⁶ and µm).
ZOOM_MAX = 3
#: One θ step may move the predicted outcome by at most this share of an e unit: the
#: outcome model is fitted where the search stands, and the outcome is often more
#: sensitive where it goes (a faster push).
THETA_MOVE = 0.1


def zoom_level(best_cost: float, e_unit: float) -> int:
    """Tenfold refinements of the prompt's units at a best cost (see the module docstring).

    Args:
        best_cost: The best cost so far [m].
        e_unit: The prompt's base e unit [m].

    Returns:
        The smallest level L ≤ :data:`ZOOM_MAX` at which the best cost reads at least
        :data:`ZOOM_READABLE` units of ``e_unit / 10**L`` (0 while it reads them already).
    """
    if not best_cost > 0:
        return ZOOM_MAX
    level = math.ceil(math.log10(ZOOM_READABLE * e_unit / best_cost) - 1e-9)
    return min(ZOOM_MAX, max(0, level))


def theta_level(jacobian: np.ndarray, theta_steps: int, e_unit: float, e_level: int) -> int:
    """Tenfold refinements of θ's units at which one θ step moves the outcome little.

    Args:
        jacobian: The outcome model's Jacobian [outcome units per unit of normalised θ].
        theta_steps: The prompt's base integer steps across each θ range.
        e_unit: The prompt's base e unit [outcome units].
        e_level: The e unit's refinements (:func:`zoom_level`); θ's are never fewer.

    Returns:
        The smallest level L in [``e_level``, :data:`ZOOM_MAX`] at which one step of
        ``1 / (theta_steps * 10**L)`` in any θ dimension moves the prediction by at most
        :data:`THETA_MOVE` × ``e_unit / 10**e_level`` (``e_level`` where the Jacobian is
        not finite).
    """
    moves = np.linalg.norm(np.asarray(jacobian, float), axis=0) / theta_steps
    ratio = float(np.max(moves)) * 10**e_level / (THETA_MOVE * e_unit) if moves.size else 0.0
    if not (math.isfinite(ratio) and ratio > 1.0):
        return e_level
    return min(ZOOM_MAX, max(e_level, math.ceil(math.log10(ratio) - 1e-9)))


@dataclass(frozen=True)
class ICPIPlusSettings(JacobianSettings):
    """Settings of icpi+ (the retrieval and trust-region ones are the Jacobian's)."""

    legacy: ClassVar[Mapping[str, Any]] = {
        "outcome_prior": 1.0,
        "contradiction_tolerance": 1.0,
        "agreement": None,
        "untried_margin": 0.0,
        "short_step": 0.0,
    }

    n_samples: int = 4
    """Model candidates per iteration."""
    model: Literal["on", "off"] = "on"
    """``off``: numeric candidates only (the ablation; no model call)."""
    judge: Literal["on", "off"] = "on"
    """``off``: the model's candidate wins whenever one parses (the ablation)."""
    perturbations: int = 4
    """Random variations of the Jacobian step among the candidates."""
    final_best: bool = True
    """Spend the last rollout of the budget on the best θ so far."""
    constrain: Constrain = "off"
    """Constrained decoding: ``gbnf`` (llama.cpp grammar), ``vllm`` (structured outputs),
    ``json`` (JSON schema, chat mode), ``off`` (the regex parser alone)."""
    theta_steps: int = 1000
    """Integer steps across each θ range in the prompt (1000: permille; 100: percent, the
    paper's)."""
    e_unit: float | None = None
    """Outcome units per integer step of e in the prompt; unset: a tenth of the task's
    ``e_unit`` (millimetres of a metre-scale outcome; the paper's centimetres are 0.01)."""
    zoom: bool = True
    """Refine the prompt's θ and e units tenfold per tenfold fall of the best cost below
    ten e units (:func:`zoom_level`); off: ``theta_steps`` and ``e_unit`` throughout."""
    sensitivity: bool = True
    """Refine θ's units further, until one θ step moves the outcome model's prediction by
    at most a tenth of an e unit (:func:`theta_level`); off: θ's units only as fine as e's."""
    contradiction: bool = ArbiterSettings.contradiction
    """Take the model's claim to be no more precise than the outcome model's contradiction
    of it (:class:`~icpi.manipulation.arbiter.ArbiterSettings`, whose default it takes)."""
    outcome_prior: float = ArbiterSettings.outcome_prior
    """Scale of the outcome model's uncertainty before its record says more
    (:class:`~icpi.manipulation.arbiter.ArbiterSettings`, whose default it takes)."""
    contradiction_tolerance: float = ArbiterSettings.contradiction_tolerance
    """Share of the outcome model's uncertainty that explains a contradiction
    (:class:`~icpi.manipulation.arbiter.ArbiterSettings`, whose default it takes)."""
    agreement: float | None = ArbiterSettings.agreement
    """Largest scatter of the model's samples, relative to the error they correct, that
    counts as agreement (:class:`~icpi.manipulation.arbiter.ArbiterSettings`, whose
    default it takes)."""
    untried_margin: float = 0.0
    """Until the model has a rollout on its record, its candidate wins only where its
    expected improvement exceeds the best other candidate's by this share (an untried
    source must win clearly); 0: by any amount."""
    short_step: float = 0.0
    """Until the model has a rollout on its record, a model step (the samples' median, whole)
    shorter than this share of the ``lknn20`` step makes no claim: it is judged by the
    outcome model alone, like the Jacobian step; 0: off."""
    escape: int = 5
    """After this many rollouts in a row without a new best, while the best is short of the
    task's success threshold, roll out the ``lknn20`` method's own step (from the last
    rollout, on the dataset alone) instead of asking the model and judging steps from the
    best; 0: never. 5 was chosen among 3, 5 and 8 on seeds 100–129 (benchmarks/RESULTS.md)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_samples < 1 or self.perturbations < 0 or self.theta_steps < 1:
            raise ValueError("n_samples and theta_steps must be >= 1, perturbations >= 0")
        if self.escape < 0:
            raise ValueError(f"escape must be >= 0, got {self.escape}")
        if self.e_unit is not None and not self.e_unit > 0:
            raise ValueError(f"e_unit must be > 0, got {self.e_unit}")
        if not self.outcome_prior > 0:
            raise ValueError(f"outcome_prior must be > 0, got {self.outcome_prior}")
        if self.agreement is not None and not self.agreement > 0:
            raise ValueError(f"agreement must be > 0, got {self.agreement}")
        if not self.untried_margin >= 0:
            raise ValueError(f"untried_margin must be >= 0, got {self.untried_margin}")
        if not self.short_step >= 0:
            raise ValueError(f"short_step must be >= 0, got {self.short_step}")
        if not self.contradiction_tolerance >= 0:
            raise ValueError(
                f"contradiction_tolerance must be >= 0, got {self.contradiction_tolerance}"
            )


def correction_grammar(dim: int, steps: int) -> str:
    """A GBNF grammar of one answer: ``dim`` signed integers, then the line terminator.

    The terminator matters: without it a model that wants to stop after ``-3`` is forced
    to keep writing digits.

    Args:
        dim: Number of integers (θ's dimension).
        steps: Largest magnitude (``theta_steps``, times ``10**ZOOM_MAX`` with ``zoom``: the
            finest units a prompt may use), which bounds the number of digits.

    Returns:
        The grammar.
    """
    digits = len(str(steps))
    number = '"-"? [0-9]' + " [0-9]?" * (digits - 1)
    body = ' " " '.join(["num"] * dim)
    return f'root ::= " "? {body} "\\n"\nnum ::= {number}\n'


def decoding_params(settings: ICPIPlusSettings, dim: int) -> dict[str, Any]:
    """The request fields of the chosen constrained decoding (none when ``off``).

    Args:
        settings: The settings.
        dim: θ's dimension.

    Returns:
        ``{"extra_body": ...}`` for the sampler, or ``{}``.
    """
    refined = settings.zoom or settings.sensitivity
    steps = settings.theta_steps * (10**ZOOM_MAX if refined else 1)  # the finest units
    grammar = correction_grammar(dim, steps)
    if settings.constrain == "gbnf":
        return {"extra_body": {"grammar": grammar}}
    if settings.constrain == "vllm":
        return {"extra_body": {"structured_outputs": {"grammar": grammar}}}
    if settings.constrain == "json":
        schema = {
            "type": "array",
            "items": {"type": "integer", "minimum": -steps, "maximum": steps},
            "minItems": dim,
            "maxItems": dim,
        }
        fmt = {"type": "json_schema", "json_schema": {"name": "correction", "schema": schema}}
        return {"extra_body": {"response_format": fmt}}
    return {}


class _NoModel:
    """The sampler of ``model=off``: never called (no model call at all)."""

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Refuse: ``model=off`` asks no model."""
        raise RuntimeError("icpi+ with model=off asks no model")


_NO_MODEL = _NoModel()


@register
class ICPIPlus(PromptedMethod[ICPIPlusSettings]):
    """icpi+: model and numeric candidates from the best θ, chosen on evidence."""

    name = "icpi+"
    summary = (
        "beyond the paper: model + numeric candidates from the best θ, an arbiter that"
        " weighs each source's record, trust region; ablations `icpi+[model=off]`,"
        " `icpi+[judge=off]`"
    )
    Settings = ICPIPlusSettings
    e_unit_scale = 0.1  # millimetres where the task writes centimetres
    llm_defaults = {
        "sampling": {"max_tokens": ANSWER_MAX_TOKENS, "stop": ["\n"], "temperature": 0.7}
    }

    @classmethod
    def needs_model(cls, settings: MethodSettings) -> bool:
        """Whether the model is on (``model=off`` makes no call)."""
        return getattr(settings, "model", "on") == "on"

    @classmethod
    def sampler_params(cls, settings: MethodSettings, dim: int) -> dict[str, Any]:
        """The constrained-decoding fields of each request (``constrain``)."""
        assert isinstance(settings, ICPIPlusSettings)
        return decoding_params(settings, dim)

    def __init__(self, ctx: MethodContext, settings: ICPIPlusSettings | None = None) -> None:
        """Assemble the loop (see :class:`~icpi.manipulation.methods.base.Method`)."""
        super().__init__(ctx, settings)
        self.local = LocalSearch(self, self.settings)
        self.arbiter = Arbiter(
            ArbiterSettings(
                contradiction=self.settings.contradiction,
                outcome_prior=self.settings.outcome_prior,
                contradiction_tolerance=self.settings.contradiction_tolerance,
                agreement=self.settings.agreement,
            )
        )
        self.model_on = self.settings.model == "on" and ctx.sampler is not None
        # never roll out a θ twice where the task says a rollout is exactly repeatable
        self.deterministic = bool(getattr(ctx.task, "deterministic", False))
        self.seen: list[Vec] = []  # every θ rolled out (normalised)
        self.assemble(
            where=self._where,
            sampler=ctx.sampler if ctx.sampler is not None else _NO_MODEL,
            selector=FirstValid(),
            max_resamples=0,
        )
        self.texts = {(0, 0): self.text}  # the prompt's writer per (θ, e) refinement

    def _where(self, state: LoopState) -> dict[str, Vec]:
        return self.local.where()

    def use_units(self, theta_level: int, e_level: int) -> None:
        """Write the prompt, and read its answers, in refined units.

        Args:
            theta_level: Tenfold refinements of ``theta_steps``.
            e_level: Tenfold refinements of the e unit.
        """
        key = (theta_level, e_level)
        if key not in self.texts:
            s = self.settings
            self.texts[key] = ICPIText(
                self.ctx,
                self._where,
                s.feature,
                s.theta_steps * 10**theta_level,
                self.prompt_e_unit() / 10**e_level,
            )
        self.text = self.texts[key]
        self.loop.pieces = dataclasses.replace(
            self.loop.pieces, prompt=self.text.template, parser=self.text.parser
        )

    def build(self, state: LoopState) -> list[Any]:
        """The k examples nearest to the best rollout, farthest first (the prompt's context)."""
        return self.local.neighbours(own=True) if state.history else []

    def learn(self, rollout: Rollout, attempt: Attempt) -> None:
        """Update the search (best, trust region) and the sources' records."""
        sel = attempt.selection
        self.local.search.observe(observed(rollout), sel.get("predicted_cost"))
        if sel.get("decision") is not None:
            self.arbiter.learn(sel["decision"], rollout.e)
        self.seen.append(self.box.to_unit(rollout.theta))

    def record(self, attempt: Attempt) -> dict[str, Any]:
        """ICPI's part of the record, plus the arbiter's decision."""
        sel = attempt.selection
        return {
            **attempt_record(attempt),
            "predicted_cost": sel.get("predicted_cost"),
            "radius": sel.get("radius"),
            "model_candidates": sel.get("model_candidates", 0),
            "units": sel.get("units"),
        }

    def units(self) -> dict[str, Any]:
        """The units the prompt wrote and its answers were read in (the zoom level's)."""
        fmt = self.text.fmt
        return {"theta_steps": fmt.theta_steps, "e_unit": fmt.e_unit}

    @property
    def model_untried(self) -> bool:
        """Whether the model has no rollout on its record yet (see ``short_step``)."""
        return "model" not in self.arbiter.records

    # ------------------------------------------------------------------ candidates
    def offer(self, source: str, dz: Vec, **kw: Any) -> list[Candidate]:
        """A source's step, whole and shortened to the trust region, clipped to the box.

        Args:
            source: The source.
            dz: Its step from the best θ (normalised).
            **kw: ``index``, ``spread`` and ``scatter`` of a model candidate.

        Returns:
            The candidates (one when the step is inside the region).
        """
        best = self.local.search.best
        assert best is not None
        radius = self.local.search.region.radius
        norm = float(np.linalg.norm(dz))
        steps = [dz] if norm <= radius else [dz, dz * (radius / norm)]
        out = []
        z0 = self.box.to_unit(best.theta)
        for step in steps:
            clipped = np.clip(z0 + step, 0.0, 1.0) - z0
            fraction = float(clipped @ dz / (norm * norm)) if norm > 0 else 0.0
            out.append(Candidate(source, clipped, fraction, **kw))
        return out

    def candidates(self, results: list[Any], model: LocalJacobian) -> list[Candidate]:
        """Every source's candidates, not yet rolled out, first of each θ kept.

        Args:
            results: The model's parsed answers (empty when it was not asked).
            model: The outcome model.

        Returns:
            The candidates.
        """
        s = self.settings
        local = self.local
        best = local.search.best
        assert best is not None
        cands: list[Candidate] = []
        lknn = linear_correction(local.neighbours(own=True), local.where(), s.feature)
        lknn = lknn / self.box.span
        valid = [i for i, r in enumerate(results) if r.ok]
        if valid:
            steps = np.asarray(
                [self.text.fmt.int_to_dtheta(results[i].value) / self.box.span for i in valid]
            )
            median = np.median(steps, axis=0)
            nearest = valid[int(np.argmin(np.linalg.norm(steps - median, axis=1)))]
            scatter: float | None = None  # one answer: no agreement to judge
            spread = self.arbiter.settings.unknown_spread * best.cost
            if len(valid) > 1:
                off = (steps - median) @ model.J.T
                scatter, spread = self.arbiter.agreement_evidence(
                    float(np.sqrt(np.mean(np.sum(off * off, axis=1)))), len(valid), best.cost
                )
            claims = not (self.model_untried and too_short(median, lknn, s.short_step))
            cands += self.offer(
                "model", median, index=nearest, spread=spread, scatter=scatter, claims=claims
            )
        jac = model.step(best.e)
        cands += self.offer("jacobian", jac)
        single = self.arbiter.settings.unknown_spread * best.cost  # one answer: no agreement
        cands += self.offer("lknn20", lknn, spread=single)
        rng = np.random.default_rng([self.ctx.seed, len(self.loop.buffer), 31])
        radius = local.search.region.radius
        for _ in range(s.perturbations):
            dz = local.search.region.clip(jac) + rng.normal(0.0, 0.5 * radius, size=jac.shape)
            cands += self.offer("perturbation", dz)[-1:]
        z0 = self.box.to_unit(best.theta)
        taken = list(self.seen) if self.deterministic else []
        fresh = []
        for c in cands:  # the first candidate of each θ, and none already rolled out
            z = z0 + c.dz
            if not among(z, taken):
                taken.append(z)
                fresh.append(c)
        while not fresh:  # everything was rolled out already: look around at random
            dz = rng.normal(0.0, radius, size=jac.shape)
            fresh = [c for c in self.offer("perturbation", dz)[-1:] if np.any(c.dz != 0)]
        return fresh

    def stalled(self) -> bool:
        """Whether the search is stuck short of success (see ``escape``)."""
        search, s = self.local.search, self.settings
        best = search.best
        assert best is not None
        since = len(search.seen) - 1 - next(i for i, r in enumerate(search.seen) if r is best)
        return 0 < s.escape <= since and best.cost >= success_threshold(self.ctx.task)

    def escape_step(self) -> Vec | None:
        """The ``lknn20`` method's own step: from the last rollout, on the dataset alone.

        Returns:
            The step from the best θ (normalised), or ``None`` where it lands on a θ already
            rolled out on a deterministic task.
        """
        local = self.local
        last, best = local.search.seen[-1], local.search.best
        assert best is not None
        where = local.where(last)
        dtheta = linear_correction(local.retriever.nearest(where), where, self.settings.feature)
        z = self.box.to_unit(self.box.clip(last.theta + dtheta))
        if self.deterministic and among(z, self.seen):
            return None
        return z - self.box.to_unit(best.theta)

    def propose(self) -> Vec:
        """The arbiter's choice among the candidates (see the module docstring)."""
        t0 = time.perf_counter()
        local = self.local
        best = local.search.best
        assert best is not None
        s = self.settings
        escape = self.escape_step() if self.stalled() else None
        neighbours = local.neighbours()
        model = local.model(neighbours)
        fit_s = time.perf_counter() - t0
        if self.model_on:
            e_unit = self.prompt_e_unit()
            e_level = zoom_level(best.cost, e_unit) if s.zoom else 0
            level = theta_level(model.J, s.theta_steps, e_unit, e_level)
            self.use_units(level if s.sensitivity else e_level, e_level)
        state = self.loop.state()
        draw = self.loop.draw(state) if self.model_on and escape is None else None
        t_arbiter = time.perf_counter()
        residual = fit_residual(
            model,
            self.box.span,
            neighbours,
            local.search.own(),
            (best.theta, best.outcome),
            s.own_weight,
        )
        if escape is not None:
            cands = [Candidate("escape", escape)]
        else:
            cands = self.candidates(draw.results if draw is not None else [], model)
        verdicts = self.arbiter.judge(cands, model, best.e, residual)
        sources = [c.source for c in cands]
        if s.judge == "off":  # the ablation: the model's step when it has one
            win = sources.index("model") if "model" in sources else 0
        else:
            win = choose(verdicts, sources, s.untried_margin if self.model_untried else 0.0)
        chosen, verdict = cands[win], verdicts[win]
        theta = self.box.from_unit(self.box.to_unit(best.theta) + chosen.dz)
        info = {
            "predicted_cost": float(np.linalg.norm(verdict.predicted)),
            "radius": local.search.region.radius,
            "residual": residual,
            "units": self.units() if draw is not None else None,
            "decision": decision_record(chosen, verdict, best.cost),
            "scales": {k: self.arbiter.scale(k) for k in ("outcome_model", *CLAIMING)},
            "candidates": [
                {
                    "source": c.source,
                    "fraction": c.fraction,
                    "predicted_cost": float(np.linalg.norm(v.predicted)),
                    "sigma": v.sigma,
                    "score": v.score,
                }
                for c, v in zip(cands, verdicts, strict=True)
            ],
            "model_candidates": sources.count("model"),
            "arbiter_s": fit_s + time.perf_counter() - t_arbiter,  # fits, candidates, scores
        }
        index = chosen.index if chosen.source == "model" else None
        self.proposal = self.proposal_of(state, draw, theta, chosen.source, index, info, t0)
        return theta
