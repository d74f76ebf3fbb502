"""icpi+: the model proposes, the numbers dispose.

Beside the paper-faithful ``icpi``, on the same dataset, budget, instances and ask/tell
interface. Each iteration:

1. **Candidates.** From the *best* rollout so far (not the last), the prompt of ICPI asks
   the model for ``n_samples`` corrections Δθ (one request with ``n``; a server that
   ignores ``n`` is topped up, and llama.cpp reuses the processed prompt); the numeric
   candidates join them: the local-Jacobian step (the strongest numeric predictor,
   :mod:`~icpi.manipulation.methods.jacobian`), the linear-KNN step of ``lknn20``, and
   ``perturbations`` variations of the Jacobian step. Every candidate is clipped to the
   trust region and the θ box.
2. **A judge.** A local linear model of the outcome, fitted on the retrieved neighbours and
   the run's own rollouts (:class:`~icpi.manipulation.local_model.LocalJacobian`), predicts
   each candidate's error; the candidate with the smallest predicted cost is rolled out,
   and its source (``model``, ``jacobian``, ``lknn20``, ``perturbation``) is recorded. An
   answer that parses but is implausible is scored like any other, never sent as is.
3. **No drift.** The trust region shrinks after a worse rollout and grows after a good
   prediction; the last rollout of the budget re-runs the best θ (``final_best``), so the
   run ends on the best skill it found.
4. **Answers that parse.** ``constrain`` turns on constrained decoding where the backend
   has it: a GBNF grammar ending in the line terminator for llama.cpp (the embedded
   model), vLLM's ``structured_outputs`` grammar, or a JSON schema (OpenAI, Ollama; chat).

Ablations: ``icpi+[model=off]`` (the same judge and trust region, numeric candidates
only: no model call at all) and ``icpi+[judge=off]`` (the model's first valid candidate
wins, the Jacobian step when none parses).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from icpi.core import Attempt, FirstValid, LoopState, SampleBatch
from icpi.core.prompts import Prompt
from icpi.envs.spec import Rollout
from icpi.manipulation.methods import register
from icpi.manipulation.methods.base import MethodContext, MethodSettings, Vec
from icpi.manipulation.methods.icpi import ANSWER_MAX_TOKENS, PromptedMethod, attempt_record
from icpi.manipulation.methods.jacobian import JacobianSettings, LocalSearch, observed
from icpi.manipulation.predictors import local_linear
from icpi.manipulation.retrieval import features

log = logging.getLogger(__name__)

Constrain = Literal["off", "gbnf", "vllm", "json"]


@dataclass(frozen=True)
class ICPIPlusSettings(JacobianSettings):
    """Settings of icpi+ (the retrieval and trust-region ones are the Jacobian's)."""

    n_samples: int = 4
    """Model candidates per iteration."""
    model: Literal["on", "off"] = "on"
    """``off``: numeric candidates only (the ablation; no model call)."""
    judge: Literal["on", "off"] = "on"
    """``off``: the model's first valid candidate wins (the ablation)."""
    perturbations: int = 4
    """Random variations of the Jacobian step among the candidates."""
    final_best: bool = True
    """Spend the last rollout of the budget on the best θ so far."""
    constrain: Constrain = "off"
    """Constrained decoding: ``gbnf`` (llama.cpp grammar), ``vllm`` (structured outputs),
    ``json`` (JSON schema, chat mode), ``off`` (the regex parser alone)."""
    theta_steps: int = 100
    """Integer steps across each θ range in the prompt (100: percent; 1000: permille)."""
    e_unit: float | None = None
    """Outcome units per integer step of e in the prompt (0.01: centimetres of a metre-scale
    outcome; 0.001: millimetres); unset: the task's ``e_unit`` (default 0.01)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_samples < 1 or self.perturbations < 0 or self.theta_steps < 1:
            raise ValueError("n_samples and theta_steps must be >= 1, perturbations >= 0")
        if self.e_unit is not None and not self.e_unit > 0:
            raise ValueError(f"e_unit must be > 0, got {self.e_unit}")


def correction_grammar(dim: int, steps: int) -> str:
    """A GBNF grammar of one answer: ``dim`` signed integers, then the line terminator.

    The terminator matters: without it a model that wants to stop after ``-3`` is forced
    to keep writing digits.

    Args:
        dim: Number of integers (θ's dimension).
        steps: Largest magnitude (``theta_steps``), which bounds the number of digits.

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
    grammar = correction_grammar(dim, settings.theta_steps)
    if settings.constrain == "gbnf":
        return {"extra_body": {"grammar": grammar}}
    if settings.constrain == "vllm":
        return {"extra_body": {"structured_outputs": {"grammar": grammar}}}
    if settings.constrain == "json":
        schema = {
            "type": "array",
            "items": {"type": "integer", "minimum": -settings.theta_steps},
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


@dataclass(frozen=True)
class Candidate:
    """One proposed θ."""

    source: str
    theta: Vec
    index: int | None = None  # the model sample it came from


@register
class ICPIPlus(PromptedMethod[ICPIPlusSettings]):
    """icpi+: model candidates and numeric ones, a judge, a trust region around the best."""

    name = "icpi+"
    summary = (
        "beyond the paper: model + numeric candidates from the best θ, judged by a local"
        " model, trust region; ablations `icpi+[model=off]`, `icpi+[judge=off]`"
    )
    Settings = ICPIPlusSettings
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
        self.model_on = self.settings.model == "on" and ctx.sampler is not None
        self.assemble(
            where=lambda state: self.local.where(),
            sampler=ctx.sampler if ctx.sampler is not None else _NO_MODEL,
            selector=FirstValid(),
            max_resamples=0,
        )

    def build(self, state: LoopState) -> list[Any]:
        """The k examples nearest to the best rollout, farthest first (the prompt's context)."""
        return self.local.neighbours(own=True) if state.history else []

    def learn(self, rollout: Rollout, attempt: Attempt) -> None:
        """Update the search (best, trust region) with a finished attempt."""
        self.local.search.observe(observed(rollout), attempt.selection.get("predicted_cost"))

    def record(self, attempt: Attempt) -> dict[str, Any]:
        """ICPI's part of the record, plus the judge's decision."""
        sel = attempt.selection
        return {
            **attempt_record(attempt),
            "predicted_cost": sel.get("predicted_cost"),
            "radius": sel.get("radius"),
            "model_candidates": sel.get("model_candidates", 0),
        }

    def propose(self) -> Vec:
        """The judged candidate (see the module docstring)."""
        t0 = time.perf_counter()
        state = self.loop.state()
        draw = self.loop.draw(state) if self.model_on else None
        results = draw.results if draw is not None else []
        s = self.settings
        local = self.local
        best = local.search.best
        assert best is not None
        model = local.model(local.neighbours())
        shown = local.neighbours(own=True)
        fmt = self.text.fmt
        cands = [
            Candidate("model", local.theta_of(fmt.int_to_dtheta(r.value) / self.box.span), i)
            for i, r in enumerate(results)
            if r.ok
        ]
        jac = model.step(best.e)
        cands.append(Candidate("jacobian", local.theta_of(jac)))
        where = local.where()
        feats = np.asarray([features(ex, s.feature) for ex in shown])
        dtheta = np.asarray([ex["dtheta"] for ex in shown])
        step = local_linear(feats, dtheta, features(where, s.feature)) / self.box.span
        cands.append(Candidate("lknn20", local.theta_of(step, clip=False)))
        rng = np.random.default_rng([self.ctx.seed, state.iteration, 31])
        radius = local.search.region.radius
        for _ in range(s.perturbations):
            dz = local.search.region.clip(jac) + rng.normal(0.0, 0.5 * radius, size=jac.shape)
            cands.append(Candidate("perturbation", local.theta_of(dz)))
        scores = [local.predicted_cost(model, c.theta) for c in cands]
        if s.judge == "on":
            win = int(np.argmin(scores))
        else:  # the ablation: the model's first valid candidate, else the Jacobian step
            sources = [c.source for c in cands]
            win = sources.index("model") if "model" in sources else sources.index("jacobian")
        chosen = cands[win]
        info = {
            "predicted_cost": scores[win],
            "radius": radius,
            "candidates": [
                {"source": c.source, "theta": c.theta.tolist(), "predicted_cost": sc}
                for c, sc in zip(cands, scores, strict=True)
            ],
            "model_candidates": sum(c.source == "model" for c in cands),
        }
        self.proposal = self.proposal_of(
            state, draw, chosen.theta, chosen.source, chosen.index, info, t0
        )
        return chosen.theta
