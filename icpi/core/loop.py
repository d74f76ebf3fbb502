"""The in-context improvement loop, with a budget, resumable from its buffer.

One iteration: build the context → render the prompt → sample ``n`` candidates → parse
each → select one (re-sampling a bounded number of times when none is valid, then falling
back) → turn it into an action → evaluate it → append the attempt to the buffer. ICPI,
ICRL prompting and ME-ICPO are configurations of these pieces.

Every sampling call gets a seed derived from the run seed, the iteration and the re-sample
round, so a resumed or replayed run asks exactly the same requests (and hits the cache).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from icpi.core.buffer import ExperienceBuffer
from icpi.core.context import ContextBuilder
from icpi.core.parsing import Parser, ParseResult
from icpi.core.prompts import PromptTemplate
from icpi.core.records import Attempt, Feedback, LoopState
from icpi.core.rewards import RewardProvider
from icpi.core.samplers import Sampler
from icpi.core.selectors import Selection, Selector

log = logging.getLogger(__name__)

_SEED_MOD = 2**31 - 1


def derive_seed(seed: int | None, iteration: int, round_: int = 0) -> int | None:
    """Derive the sampling seed of one call from the run seed.

    Args:
        seed: Run seed; ``None`` gives ``None`` (unseeded sampling).
        iteration: Loop iteration.
        round_: Re-sample round within the iteration.

    Returns:
        A seed in ``[0, 2**31 - 1)``, or ``None``.
    """
    if seed is None:
        return None
    return (seed * 1_000_003 + iteration * 1_009 + round_ * 7 + 1) % _SEED_MOD


@dataclass(frozen=True)
class Budget:
    """When the loop stops (whichever limit comes first)."""

    max_iterations: int = 20
    """Attempts in total, resumed ones included (ICPI: ≤ 20 per task instance)."""
    max_model_calls: int | None = None
    """Sampling calls in total (cache hits count), resumed ones included."""
    max_tokens: int | None = None
    """Prompt + completion tokens in total, resumed ones included."""
    max_seconds: float | None = None
    """Wall time of one :meth:`ImprovementLoop.run` call, seconds."""
    target_reward: float | None = None
    """Stop once an attempt reaches this reward (e.g. −0.005 for a 5 mm cost)."""


@dataclass
class LoopResult:
    """What a run produced."""

    attempts: list[Attempt]
    """All finished attempts, resumed ones included."""
    stop_reason: str
    """``iterations``, ``model_calls``, ``tokens``, ``seconds`` or ``target``."""
    resumed: int
    """Attempts loaded from the buffer rather than run."""
    stats: dict[str, Any] = field(default_factory=dict)
    """Totals: model calls, tokens, fallbacks, parse outcomes, mean overhead."""

    @property
    def best(self) -> Attempt | None:
        """The attempt with the highest finite reward."""
        finite = [a for a in self.attempts if math.isfinite(a.reward)]
        return max(finite, key=lambda a: a.reward) if finite else None

    @property
    def final(self) -> Attempt | None:
        """The last attempt."""
        return self.attempts[-1] if self.attempts else None


def _no_calls() -> dict[str, Any]:
    return {
        "calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_s": 0.0,
        "cached": False,
        "keys": [],
    }


@dataclass
class Draw:
    """What the model answered one prompt (:meth:`ImprovementLoop.draw`), and the selection."""

    prompt: Any
    """The prompt sent."""
    samples: list[str]
    """Every completion received, over all sampling rounds."""
    results: list[ParseResult]
    """The parse result of each completion."""
    selection: Selection
    """The selector's choice (``index`` over all rounds; ``None`` when nothing was valid)."""
    llm: dict[str, Any]
    """Model accounting: calls, tokens, latency, cache keys, errors."""
    model_s: float
    """Seconds spent waiting for the model."""


@dataclass
class Proposal:
    """An action chosen by :meth:`ImprovementLoop.propose`, waiting for its evaluation."""

    iteration: int
    """Loop iteration."""
    action: Any
    """The action to evaluate (``None`` when invalid)."""
    source: str
    """``initial``, ``model``, ``fallback`` or ``invalid``."""
    valid: bool
    """Whether a model answer was selected."""
    prompt: Any
    """The prompt sent (``None`` for the initial action)."""
    samples: list[str]
    """Every completion received."""
    parse_errors: list[str | None]
    """Parse error code of each completion (``None`` when it parsed)."""
    selection: dict[str, Any]
    """Index of the selected completion and the selector's info."""
    llm: dict[str, Any]
    """Model accounting: calls, tokens, latency, cache keys."""
    model_s: float
    """Seconds spent waiting for the model."""
    propose_s: float
    """Seconds the proposal took in total."""

    @classmethod
    def direct(cls, iteration: int, action: Any, source: str, propose_s: float = 0.0) -> Proposal:
        """An action decided without asking the model (e.g. θ0).

        Args:
            iteration: Loop iteration.
            action: The action.
            source: Where it came from (``initial``, ``best``, a numeric method's name).
            propose_s: Seconds the decision took.

        Returns:
            The proposal (no prompt, no samples).
        """
        return cls(iteration, action, source, False, None, [], [], {}, _no_calls(), 0.0, propose_s)


@dataclass
class LoopPieces:
    """What a loop is made of: every improver (ICPI, ICRL, ME-ICPO) supplies these six."""

    context: ContextBuilder
    """Chooses the examples shown."""
    prompt: PromptTemplate
    """Renders the prompt."""
    sampler: Sampler
    """Draws candidates."""
    parser: Parser
    """Parses each candidate."""
    selector: Selector
    """Picks one candidate."""
    reward: RewardProvider | None = None
    """Evaluates the action (needed by :meth:`ImprovementLoop.step` and ``run``; a caller
    that evaluates the actions itself, through ``propose`` and ``complete``, has none)."""


@dataclass(frozen=True)
class LoopPolicy:
    """How the loop samples, and what it does without a valid answer."""

    n_samples: int = 1
    """Candidates per sampling call."""
    max_resamples: int = 1
    """Extra sampling rounds when no candidate is valid."""
    model_errors: tuple[type[BaseException], ...] = ()
    """Sampler exceptions that end the round like an invalid answer (then re-sample, then
    fall back) instead of stopping the run, e.g. ``(LLMUnavailableError,)``; the default
    stops the run (it can be resumed later)."""
    to_action: Callable[[Any, LoopState], Any] | None = None
    """Turns the selected value into the action evaluated (ICPI: ``clip(θ_i + Δθ)``);
    ``None``: the value itself."""
    fallback: Callable[[LoopState], Any] | None = None
    """Action when no candidate is valid after re-sampling (ICPI: the local linear fit);
    ``None``: the attempt is recorded unevaluated, with ``invalid_reward``."""
    initial_action: Callable[[LoopState], Any] | None = None
    """Action of iteration 0, evaluated without a model call (the toy task's θ0)."""
    invalid_reward: float = float("nan")
    """Reward recorded for an attempt with no valid action and no fallback."""

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.max_resamples < 0:
            raise ValueError("n_samples must be >= 1 and max_resamples >= 0")


class ImprovementLoop:
    """The shared in-context improvement loop."""

    def __init__(
        self,
        pieces: LoopPieces,
        policy: LoopPolicy | None = None,
        *,
        task: Mapping[str, Any] | None = None,
        buffer: ExperienceBuffer | None = None,
        seed: int | None = 0,
    ) -> None:
        """Assemble a loop from its pieces.

        Args:
            pieces: Context builder, prompt, sampler, parser, selector and reward.
            policy: Sampling and fallback behaviour; default :class:`LoopPolicy()`.
            task: Static task description, shown to every piece through the state.
            buffer: Experience buffer (resumed from if it holds attempts); ``None``: a
                fresh in-memory one.
            seed: Run seed from which every call's seed is derived.
        """
        self.pieces = pieces
        self.policy = policy or LoopPolicy()
        self.task = dict(task or {})
        self.buffer = buffer if buffer is not None else ExperienceBuffer()
        self.seed = seed

    # The pieces, as attributes (what the improvers and tests read).
    @property
    def context(self) -> ContextBuilder:
        """The context builder."""
        return self.pieces.context

    @property
    def prompt(self) -> PromptTemplate:
        """The prompt template."""
        return self.pieces.prompt

    @property
    def sampler(self) -> Sampler:
        """The sampler."""
        return self.pieces.sampler

    @property
    def parser(self) -> Parser:
        """The parser."""
        return self.pieces.parser

    @property
    def selector(self) -> Selector:
        """The selector."""
        return self.pieces.selector

    @property
    def reward(self) -> RewardProvider:
        """The reward provider.

        Raises:
            RuntimeError: If the loop was assembled without one.
        """
        if self.pieces.reward is None:
            raise RuntimeError("this loop has no reward provider: evaluate with complete()")
        return self.pieces.reward

    def state(self) -> LoopState:
        """Return the state of the next iteration.

        Returns:
            The state over the buffer's attempts.
        """
        history = self.buffer.attempts
        return LoopState(iteration=len(history), history=history, task=self.task)

    def draw(self, state: LoopState) -> Draw:
        """Ask the model and select among its answers (re-sampling while none is valid).

        Args:
            state: The state of this iteration.

        Returns:
            The prompt, every completion and its parse, the selection, the accounting.
        """
        model_s = 0.0
        samples: list[str] = []
        results: list[ParseResult] = []
        llm = {**_no_calls(), "cached": True}
        selection = Selection(index=None)
        prompt = self.prompt.render(state, self.context.build(state))
        for round_ in range(1 + self.policy.max_resamples):
            tm = time.perf_counter()
            texts: list[str] = []
            try:
                seed = derive_seed(self.seed, state.iteration, round_)
                batch = self.sampler.sample(prompt, self.policy.n_samples, seed)
            except self.policy.model_errors as exc:
                llm.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
                log.warning("iteration %d round %d: model error %s", state.iteration, round_, exc)
            else:
                llm["calls"] += batch.calls
                llm["prompt_tokens"] += batch.prompt_tokens
                llm["completion_tokens"] += batch.completion_tokens
                llm["latency_s"] += batch.latency_s
                llm["cached"] = llm["cached"] and batch.cached
                llm["keys"] += batch.keys
                texts = batch.texts
            model_s += time.perf_counter() - tm
            parsed = [self.parser(t) for t in texts]
            offset = len(samples)
            samples += texts
            results += parsed
            selection = self.selector.select(parsed, state)
            if selection.index is not None:
                selection = dataclasses.replace(
                    selection,
                    index=offset + selection.index,
                    info={**selection.info, "round": round_},
                )
                break
            log.info(
                "iteration %d: no valid candidate in round %d (%s)",
                state.iteration,
                round_,
                Counter(r.error for r in parsed),
            )
        llm["cached"] = llm["calls"] > 0 and llm["cached"]
        return Draw(prompt, samples, results, selection, llm, model_s)

    def propose(self, state: LoopState) -> Proposal:
        """Choose the next action without evaluating it (the "ask" half of a step).

        Iteration 0 takes the initial action when the policy has one; every other asks the
        model (:meth:`draw`) and turns the selected answer into the action, or falls back
        when no answer is valid.

        Args:
            state: The state of this iteration.

        Returns:
            The proposal; evaluate ``proposal.action`` and pass the feedback to
            :meth:`complete`.
        """
        t0 = time.perf_counter()
        initial = self.policy.initial_action
        if state.iteration == 0 and initial is not None:
            action = initial(state)
            return Proposal.direct(0, action, "initial", time.perf_counter() - t0)
        draw = self.draw(state)
        selection = draw.selection
        if selection.index is not None:
            to_action = self.policy.to_action
            value = selection.value
            action = to_action(value, state) if to_action is not None else value
            source, valid = "model", True
        elif self.policy.fallback is not None:
            action, source, valid = self.policy.fallback(state), "fallback", False
        else:
            action, source, valid = None, "invalid", False
        return Proposal(
            iteration=state.iteration,
            action=action,
            source=source,
            valid=valid,
            prompt=draw.prompt,
            samples=draw.samples,
            parse_errors=[r.error if not r.ok else None for r in draw.results],
            selection={"index": selection.index, **selection.info},
            llm=draw.llm,
            model_s=draw.model_s,
            propose_s=time.perf_counter() - t0,
        )

    def complete(
        self, proposal: Proposal, feedback: Feedback | None, reward_s: float = 0.0
    ) -> Attempt:
        """Turn a proposal and its evaluation into an attempt (the "tell" half of a step).

        Args:
            proposal: What :meth:`propose` returned.
            feedback: The evaluation of ``proposal.action``; ``None`` for an invalid
                proposal (recorded with ``invalid_reward``).
            reward_s: Seconds the evaluation took (kept out of the loop overhead).

        Returns:
            The finished attempt (not yet appended to the buffer).
        """
        if feedback is None:
            reward, info = self.policy.invalid_reward, {}
        else:
            reward, info = feedback.reward, dict(feedback.info)
        total = proposal.propose_s + reward_s
        return Attempt(
            iteration=proposal.iteration,
            action=proposal.action,
            reward=float(reward),
            info=info,
            valid=proposal.valid,
            source=proposal.source,
            prompt=proposal.prompt,
            samples=proposal.samples,
            parse_errors=proposal.parse_errors,
            selection=proposal.selection,
            llm=proposal.llm,
            timing={
                "total_s": total,
                "model_s": proposal.model_s,
                "reward_s": reward_s,
                "overhead_s": max(0.0, proposal.propose_s - proposal.model_s),
            },
            time=time.time(),
        )

    def step(self, state: LoopState) -> Attempt:
        """Run one iteration (without appending it to the buffer).

        Args:
            state: The state of this iteration.

        Returns:
            The finished attempt.
        """
        proposal = self.propose(state)
        if proposal.source == "invalid":
            return self.complete(proposal, None)
        tr = time.perf_counter()
        feedback = self.reward(proposal.action, state)
        return self.complete(proposal, feedback, reward_s=time.perf_counter() - tr)

    def _exhausted(self, budget: Budget, t_start: float) -> str | None:
        attempts = self.buffer.attempts
        if budget.target_reward is not None and any(
            a.reward >= budget.target_reward for a in attempts if math.isfinite(a.reward)
        ):
            return "target"
        if len(attempts) >= budget.max_iterations:
            return "iterations"
        if budget.max_model_calls is not None:
            if sum(a.llm.get("calls", 0) for a in attempts) >= budget.max_model_calls:
                return "model_calls"
        if budget.max_tokens is not None:
            used = sum(
                a.llm.get("prompt_tokens", 0) + a.llm.get("completion_tokens", 0) for a in attempts
            )
            if used >= budget.max_tokens:
                return "tokens"
        if budget.max_seconds is not None and time.perf_counter() - t_start >= budget.max_seconds:
            return "seconds"
        return None

    def run(self, budget: Budget | None = None) -> LoopResult:
        """Run (or resume) the loop until the budget is spent.

        Attempts already in the buffer are kept and not redone.

        Args:
            budget: Limits; default :class:`Budget()`.

        Returns:
            The result over all attempts.
        """
        budget = budget or Budget()
        t_start = time.perf_counter()
        resumed = len(self.buffer)
        if resumed:
            log.info("resuming at iteration %d", resumed)
        while (reason := self._exhausted(budget, t_start)) is None:
            attempt = self.step(self.state())
            self.buffer.append(attempt)
            log.info(
                "iteration %d: %s action, reward %.4g (%d samples, %.3f s model)",
                attempt.iteration,
                attempt.source,
                attempt.reward,
                len(attempt.samples),
                attempt.timing["model_s"],
            )
        attempts = self.buffer.attempts
        return LoopResult(
            attempts=attempts, stop_reason=reason, resumed=resumed, stats=summarise(attempts)
        )


def summarise(attempts: list[Attempt]) -> dict[str, Any]:
    """Sum the accounting of a list of attempts.

    Args:
        attempts: The attempts.

    Returns:
        Model calls and errors, tokens, model latency, sources (model / fallback / initial
        / invalid), parse outcomes by failure code, and mean overhead per iteration, seconds.
    """
    parse: Counter[str] = Counter()
    for a in attempts:
        parse.update("ok" if e is None else e for e in a.parse_errors)
    overheads = [a.timing.get("overhead_s", 0.0) for a in attempts if a.prompt is not None]
    return {
        "iterations": len(attempts),
        "model_calls": sum(a.llm.get("calls", 0) for a in attempts),
        "model_errors": sum(len(a.llm.get("errors", [])) for a in attempts),
        "prompt_tokens": sum(a.llm.get("prompt_tokens", 0) for a in attempts),
        "completion_tokens": sum(a.llm.get("completion_tokens", 0) for a in attempts),
        "model_latency_s": sum(a.llm.get("latency_s", 0.0) for a in attempts),
        "sources": dict(Counter(a.source for a in attempts)),
        "parse": dict(parse),
        "mean_overhead_s": sum(overheads) / len(overheads) if overheads else 0.0,
    }
