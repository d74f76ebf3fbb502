"""Run a language improver on N problems for R rounds into a resumable run directory.

Layout (on top of :class:`~icpi.core.rundir.RunDir`)::

    <run>/config.json            resolved configuration (written first)
    <run>/meta.json              seed, versions, git SHA
    <run>/llm_calls.jsonl        every model request (tokens, latency, texts)
    <run>/attempts/NNN.jsonl     experience buffer of problem NNN (one line per round)
    <run>/attempts/NNN.final.json  ME-ICPO's final samples of problem NNN
    <run>/records.jsonl          one line per (problem, round): reward, success, tokens
    <run>/summary.json           success rate and running-max success per round, tokens

A killed run resumes where it stopped: finished rounds are read back from the buffers and
not redone; every request goes through the LLM client's cache, so ``--offline`` replays a
run without a model. A finished run is extended by running it again with more rounds
(``config.json`` records the new count; nothing else may change). Problems can run
concurrently against one endpoint (``concurrency``): each problem has its own samplers,
seeds and buffer, so the results do not depend on the concurrency.

``config.json`` states the reward the method sees (``reward_seen``) and the prompt budget
in tokens (``context_budget``) next to the resolved settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from icpi.config import STRICT
from icpi.core import (
    Attempt,
    Budget,
    ExperienceBuffer,
    ImprovementLoop,
    LLMSampler,
    RunDir,
    Sampler,
)
from icpi.core.files import append_jsonl, write_json, write_jsonl
from icpi.errors import ConfigError
from icpi.language import game24
from icpi.language.common import (
    DEFAULT_CONTEXT_TOKENS,
    ExpertSettings,
    RoundUsage,
    Samplers,
    TokenBudget,
)
from icpi.language.icrl import (
    BASELINES,
    ICRL_ABLATIONS,
    ICRL_METHODS,
    SINGLE_PASS,
    build_icrl_loop,
)
from icpi.language.me_icpo import (
    ME_ABLATIONS,
    MeIcpoSettings,
    build_me_icpo_loop,
    final_sampling,
)
from icpi.language.tasks import SPLITS, LanguageTask, Problem, load_math_problems, make_task
from icpi.llm import LLMClient, LLMConfig
from icpi.session import RunSession

log = logging.getLogger(__name__)

METHODS = (*ICRL_METHODS, *BASELINES, "me-icpo")
TASKS = ("game24", "writing", "math")
#: Sampling parameters the runner sets on every call (``config.json`` records them as
#: ``per_call``; ``icpi lang`` has no flag for them and refuses them in ``--config``): the
#: policy's temperature, top_p and max_tokens are run settings (the papers' defaults), each
#: call's seed and n derive from the run seed and the method, stop sequences from the task.
PER_CALL = ("max_tokens", "n", "seed", "stop", "temperature", "top_p")
#: Characters of a response kept in records.jsonl.
RECORD_TEXT_CHARS = 600
#: Tokens kept free between the prompt budget and the embedded server's context.
CONTEXT_MARGIN = 64
#: Expert demonstrations drawn for Game of 24 (solved by the reference solver).
GAME24_DEMOS = 50


@dataclass(frozen=True)
class LangConfig:
    """What to run (the resolved config is written to ``config.json``)."""

    __pydantic_config__ = STRICT

    task: Literal["game24", "writing", "math"] = "game24"
    """Task id."""
    method: str = "icrl-preset"
    """``icrl-preset``, ``icrl-autonomous``, ``best-of-n``, ``self-refine``, ``reflexion``,
    ``cot-only``, ``long-cot`` or ``me-icpo``."""
    ablation: str | None = None
    """ICRL: ``zero-reward``, ``no-reward``, ``short-context``, ``explore-only``,
    ``exploit-only``, ``no-instruction``; ME-ICPO: ``no-entropy``, ``no-reward``,
    ``no-entropy+no-reward``, ``oracle``."""
    problems: int = 5
    """Number of problems."""
    rounds: int = 5
    """Rounds per problem (ICRL: one response each; ME-ICPO: k candidates each; CoT-only
    and Long-CoT answer once, whatever this says)."""
    seed: int = 0
    """Seed of the problems (puzzle generator) and of every model call."""
    temperature: float = 0.6
    """Policy sampling temperature (both papers: 0.6)."""
    top_p: float = 0.95
    """Policy nucleus mass (both papers: 0.95)."""
    max_tokens: int = 1000
    """Completion tokens per response (ICRL Game of 24: ≤ 1000)."""
    judge_tokens: int = 16
    """Completion tokens of a judge verdict."""
    helper_tokens: int = 100
    """Completion tokens of a critique, reflection or summary (ME-ICPO: ≤ ~100)."""
    step_judge: Literal["llm", "rule"] = "llm"
    """Game of 24 step rewards: the model's own judge (the paper) or the exact solver."""
    answer_judge: Literal["llm", "verifier"] = "llm"
    """Game of 24 final-equation bonus: the model's own judge (the paper) or the exact
    verifier (which leaks the answer). Success is always the exact verifier's."""
    split: str = "tot-test"
    """Game of 24 puzzles: ``tot-test`` (ranks 901–1000), ``all``, ``random``,
    ``random-unsolvable`` or ``random-any``."""
    puzzles_file: str | None = None
    """Game of 24 puzzle file (CSV or JSONL, ranked); default: the public ranking."""
    math_file: str | None = None
    """JSONL file of the math task (``question``, ``answer`` per line)."""
    threshold: float = 7.0
    """Writing: coherence score counted as a success."""
    k: int = 16
    """ME-ICPO candidates per round."""
    entropy_k: int = 16
    """ME-ICPO samples per entropy estimate."""
    final_k: int = 16
    """ME-ICPO final samples (Mean@k, Maj@k)."""
    chat: bool = False
    """Send chat messages (else plain completion prompts, which the embedded 135M model
    follows better)."""
    context_tokens: int | None = None
    """Prompt budget, tokens (the newest attempts that fit are kept); ``None``: the
    embedded server's context minus ``max_tokens`` and a margin, else
    ``DEFAULT_CONTEXT_TOKENS`` minus ``max_tokens``."""
    expert_share: float = 0.0
    """Seed 001, implicit expert forcing: expected share of samples drawn with a solved
    example in context (0: off; ICPO uses 1 of 8)."""
    expert_file: str | None = None
    """JSONL of solved examples (``question``, ``solution``); Game of 24 default: solver
    solutions of puzzles outside the run."""
    expert_reject: bool = False
    """Seed 001, expert-region reject sampling (ME-ICPO): drop expert candidates that
    disagree with the on-policy majority."""
    expert_bonus: float = 0.0
    """Seed 001, annealed expert bonus (ICRL): extra reward of a full-reward attempt drawn
    with a demonstration, decaying linearly to 0 over ``expert_anneal`` rounds."""
    expert_anneal: int = 10
    """Rounds over which the expert bonus decays."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r} (choose from {METHODS})")
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r} (choose from {TASKS})")
        allowed = ME_ABLATIONS if self.method == "me-icpo" else ICRL_ABLATIONS
        if self.ablation is not None and (self.ablation not in allowed or self.method in BASELINES):
            raise ConfigError(f"ablation {self.ablation!r} does not apply to {self.method}")
        if self.method == "me-icpo" and self.task == "writing":
            raise ConfigError("ME-ICPO votes on final answers; the writing task has none")
        if self.task == "math" and not self.math_file:
            raise ConfigError("the math task needs a math_file (JSONL with question, answer)")
        if min(self.problems, self.rounds, self.k, self.entropy_k, self.final_k) < 1:
            raise ConfigError("problems, rounds, k, entropy_k and final_k must be >= 1")
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r} (choose from {SPLITS})")
        if self.context_tokens is not None and self.context_tokens < 256:
            raise ConfigError("context_tokens must be >= 256")
        if not 0.0 <= self.expert_share <= 1.0:
            raise ConfigError("expert_share must be in [0, 1]")
        if (self.expert_reject or self.expert_bonus) and not self.expert_share:
            raise ConfigError("expert reject sampling and bonus need expert_share > 0")
        if self.expert_reject and self.method != "me-icpo":
            raise ConfigError("expert reject sampling filters ME-ICPO's candidates")
        if self.expert_bonus and self.method not in ICRL_METHODS:
            raise ConfigError("the expert bonus shapes the reward of ICRL methods")
        if self.expert_share and self.method in ("best-of-n", *SINGLE_PASS):
            raise ConfigError(f"{self.method} takes no expert demonstrations")
        if self.expert_anneal < 1:
            raise ConfigError("expert_anneal must be >= 1")

    @property
    def rounds_run(self) -> int:
        """Rounds actually run (single-pass baselines answer once)."""
        return 1 if self.method in SINGLE_PASS else self.rounds


def attempt_usage(attempt: Attempt) -> dict[str, Any]:
    """Model use of one round: every call (policy, judge, helper) when stamped, else policy's.

    Args:
        attempt: The round's attempt.

    Returns:
        ``{"calls", "tokens", "prompt_tokens", "completion_tokens", "by_role"}``.
    """
    usage = attempt.info.get("usage")
    if isinstance(usage, Mapping):
        return dict(usage)
    p, c = attempt.llm.get("prompt_tokens", 0), attempt.llm.get("completion_tokens", 0)
    return {
        "calls": attempt.llm.get("calls", 0),
        "prompt_tokens": p,
        "completion_tokens": c,
        "tokens": p + c,
        "by_role": {"policy": p + c} if p + c else {},
    }


def round_records(problem: Problem, attempts: list[Attempt]) -> list[dict[str, Any]]:
    """One record per round of a problem.

    Args:
        problem: The problem.
        attempts: Its attempts, one per round.

    Returns:
        Records with reward, success, running-max success, tokens and the response.
    """
    out = []
    solved = False
    for a in attempts:
        success = bool(a.info.get("success", False))
        solved = solved or success
        action = a.action
        response = action.get("response") if isinstance(action, Mapping) else action
        rec: dict[str, Any] = {
            "problem": problem.index,
            "id": problem.id,
            "round": a.iteration,
            "reward": a.reward,
            "success": success,
            "running_success": solved,
            "source": a.source,
            "usage": attempt_usage(a),
            "answer": a.info.get("answer"),
            "response": str(response or "")[:RECORD_TEXT_CHARS],
        }
        if "mean_at_k" in a.info:
            rec["mean_at_k"] = a.info["mean_at_k"]
        out.append(rec)
    return out


def summarise_rounds(records: list[dict[str, Any]], rounds: int) -> list[dict[str, Any]]:
    """Per-round success rate, running-max success, mean reward and tokens.

    Args:
        records: All round records.
        rounds: Rounds per problem.

    Returns:
        One entry per round (over the problems that reached it).
    """
    out = []
    for r in range(rounds):
        rs = [x for x in records if x["round"] == r]
        if not rs:
            break
        n = len(rs)
        tokens = [x["usage"].get("tokens", 0) for x in rs]
        rewards = [x["reward"] for x in rs if x["reward"] is not None]
        entry = {
            "round": r,
            "problems": n,
            "success_rate": sum(x["success"] for x in rs) / n,
            "running_max_success": sum(x["running_success"] for x in rs) / n,
            "mean_reward": sum(rewards) / len(rewards) if rewards else None,
            "tokens_mean": sum(tokens) / n,
            "tokens_total": sum(tokens),
        }
        if all("mean_at_k" in x for x in rs):
            entry["mean_at_k"] = sum(x["mean_at_k"] for x in rs) / n
        out.append(entry)
    return out


def _make_samplers(
    cfg: LangConfig, task: LanguageTask, client: LLMClient | None, sampler: Sampler | None
) -> Samplers:
    def make(role: str) -> Sampler:
        if sampler is not None:
            return sampler
        assert client is not None
        if role == "policy":
            return LLMSampler(
                client,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_tokens=cfg.max_tokens,
                stop=list(task.stop),
            )
        tokens = cfg.judge_tokens if role == "judge" else cfg.helper_tokens
        return LLMSampler(client, temperature=0.0, top_p=1.0, max_tokens=tokens)

    return Samplers.build(make)


def resolve_context_tokens(cfg: LangConfig, llm: LLMConfig, scripted: bool = False) -> int:
    """The prompt budget of a run, tokens.

    Args:
        cfg: What to run.
        llm: The endpoint.
        scripted: A sampler stands in for the model (no context limit known).

    Returns:
        ``cfg.context_tokens``, else the embedded server's context minus ``max_tokens`` and
        :data:`CONTEXT_MARGIN`, else :data:`DEFAULT_CONTEXT_TOKENS` minus ``max_tokens``.

    Raises:
        ValueError: If ``max_tokens`` leaves fewer than 256 tokens for the prompt.
    """
    if cfg.context_tokens is not None:
        return cfg.context_tokens
    if llm.embedded and not scripted:
        tokens = llm.server_n_ctx - cfg.max_tokens - CONTEXT_MARGIN
    else:
        tokens = DEFAULT_CONTEXT_TOKENS - cfg.max_tokens
    if tokens < 256:
        raise ConfigError(
            f"max_tokens {cfg.max_tokens} leaves {tokens} tokens of the model's context for "
            "the prompt; lower --max-tokens or set --context-tokens"
        )
    return tokens


def expert_demonstrations(
    cfg: LangConfig, task: LanguageTask, problems: Sequence[Problem]
) -> list[str]:
    """Solved examples for implicit expert forcing.

    Args:
        cfg: What to run (``expert_file``).
        task: The task.
        problems: The run's problems (never used as demonstrations).

    Returns:
        ``expert_file``'s ``question`` + ``solution`` rows, or for Game of 24 the reference
        solver's step-by-step solutions of :data:`GAME24_DEMOS` ranked puzzles outside
        the run.

    Raises:
        ValueError: Without a source of demonstrations for the task, or on a bad file.
    """
    if cfg.expert_file:
        rows = load_math_problems(cfg.expert_file, answer_key="solution")
        return [f"{r['question'].strip()}\n{r['solution'].strip()}" for r in rows]
    if task.name != "game24":
        raise ConfigError(f"expert demonstrations for {task.name} need --expert-file")
    used = {tuple(p.data["numbers"]) for p in problems}
    pool = [
        r.numbers
        for r in task.ranked()  # type: ignore[attr-defined]
        if r.numbers not in used
    ]
    step = max(1, len(pool) // GAME24_DEMOS)
    demos = []
    for numbers in pool[::step][:GAME24_DEMOS]:
        steps = game24.solution_steps(numbers)
        if steps:
            demos.append("\n".join([f"Input: {' '.join(map(str, numbers))}", *steps]))
    return demos


def _build_loop(
    cfg: LangConfig,
    task: LanguageTask,
    problem: Problem,
    samplers: Samplers,
    buffer: ExperienceBuffer,
    seed: int,
    budget: TokenBudget,
    expert: ExpertSettings | None,
) -> tuple[ImprovementLoop, RoundUsage]:
    if cfg.method == "me-icpo":
        settings = MeIcpoSettings(
            k=cfg.k, entropy_k=cfg.entropy_k, final_k=cfg.final_k, ablation=cfg.ablation
        )
        return build_me_icpo_loop(
            task, problem, samplers, settings, buffer=buffer, seed=seed, chat=cfg.chat,
            budget=budget, expert=expert,
        )  # fmt: skip
    return build_icrl_loop(
        cfg.method,
        task,
        problem,
        samplers,
        ablation=cfg.ablation,
        buffer=buffer,
        seed=seed,
        chat=cfg.chat,
        budget=budget,
        expert=expert,
    )


def problem_seed(seed: int, index: int) -> int:
    """Seed of one problem's model calls.

    Args:
        seed: Run seed.
        index: Problem index.

    Returns:
        A distinct non-negative seed per problem.
    """
    return (seed * 10_007 + index * 101 + 1) % (2**31 - 1)


def run_language(
    cfg: LangConfig,
    out: Path | str,
    llm: LLMConfig | None = None,
    sampler: Sampler | None = None,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Run (or resume, or extend) one method on a task's problems.

    Args:
        cfg: What to run.
        out: Run directory (resumed when it holds the same run, extended when it holds the
            same run with fewer rounds).
        llm: Model endpoint; ``None`` resolves the default (embedded) one.
        sampler: Use this sampler for every role instead of a model (tests, dry runs).
        concurrency: Problems run at once against the endpoint (threads; the results do
            not depend on it).

    Returns:
        The summary (also written to ``summary.json``).

    Raises:
        ValueError: On a bad configuration, or a directory holding another run.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    task = make_task(
        cfg.task,
        step_judge=cfg.step_judge,
        answer_judge=cfg.answer_judge,
        split=cfg.split,  # type: ignore[arg-type]
        puzzles_file=cfg.puzzles_file,
        math_file=cfg.math_file,
        threshold=cfg.threshold,
    )
    problems = task.problems(cfg.problems, cfg.seed)
    llm = llm or LLMConfig.from_sources()
    budget = TokenBudget(resolve_context_tokens(cfg, llm, scripted=sampler is not None))
    expert = None
    if cfg.expert_share > 0:
        expert = ExpertSettings(
            demonstrations=tuple(expert_demonstrations(cfg, task, problems)),
            share=cfg.expert_share,
            reject=cfg.expert_reject,
            bonus=cfg.expert_bonus,
            anneal_rounds=cfg.expert_anneal,
        )
    config = {
        "run": dataclasses.asdict(cfg),
        "reward_seen": task.reward_seen,
        # Prompt budget in tokens (named without "token": the run directory drops such keys).
        "context_budget": budget.tokens,
        "llm": llm.recorded(per_call=PER_CALL) if sampler is None else None,
        "sampler": type(sampler).__name__ if sampler is not None else None,
        "problems": [p.id for p in problems],
    }
    session = RunSession(
        out,
        config,
        seed=cfg.seed,
        llm=llm if sampler is None else None,
        what="language run",
        grow=("run.rounds",),
    )
    run_dir = session.run_dir
    (run_dir.path / "attempts").mkdir(exist_ok=True)
    records_path = run_dir.path / "records.jsonl"
    client = session.client if sampler is None else None
    rounds = cfg.rounds_run
    lock = threading.Lock()
    stop = threading.Event()
    t0 = time.perf_counter()
    write_jsonl(records_path, [])

    def run_problem(problem: Problem) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        samplers = _make_samplers(cfg, task, client, sampler)
        seed = problem_seed(cfg.seed, problem.index)
        buffer = ExperienceBuffer(
            run_dir.path / "attempts" / f"{problem.index:03d}.jsonl",
            fingerprint={"problem": problem.id, "method": cfg.method},
        )
        loop, usage = _build_loop(cfg, task, problem, samplers, buffer, seed, budget, expert)
        with lock:
            for rec in round_records(problem, buffer.attempts[:rounds]):
                append_jsonl(records_path, rec)
        for r in range(len(buffer), rounds):
            if stop.is_set():
                return [], None
            usage.start_round()
            loop.run(Budget(max_iterations=r + 1))
            rec = round_records(problem, buffer.attempts)[-1]
            with lock:
                append_jsonl(records_path, rec)
            log.info(
                "%s %s round %d: reward %.3g, success %s, %d tokens",
                cfg.method, problem.id, r, rec["reward"], rec["success"],
                rec["usage"].get("tokens", 0),
            )  # fmt: skip
        final = None
        if cfg.method == "me-icpo":
            final = _final(run_dir, loop, task, problem, samplers, cfg, seed)
        return round_records(problem, buffer.attempts[:rounds]), final

    def guarded(problem: Problem) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        try:
            return run_problem(problem)
        except BaseException:
            stop.set()  # the other problems stop after their current round
            raise

    try:
        if concurrency == 1:
            results = [guarded(p) for p in problems]
        else:
            with ThreadPoolExecutor(concurrency, thread_name_prefix="icpi-lang") as pool:
                futures = [pool.submit(guarded, p) for p in problems]
                results = [f.result() for f in futures]
        records = [r for recs, _ in results for r in recs]
        finals = [f for _, f in results if f is not None]
        write_jsonl(records_path, records)
        summary = _summary(cfg, problems, records, finals, time.perf_counter() - t0)
        summary["reward_seen"] = task.reward_seen
        summary["context_budget"] = budget.tokens
        write_json(run_dir.path / "summary.json", summary)
    finally:
        session.close()
    return summary


def _final(
    run_dir: RunDir,
    loop: ImprovementLoop,
    task: LanguageTask,
    problem: Problem,
    samplers: Samplers,
    cfg: LangConfig,
    seed: int,
) -> dict[str, Any]:
    path = run_dir.path / "attempts" / f"{problem.index:03d}.final.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("after_rounds", cfg.rounds) == cfg.rounds:
            return data
    result = {"problem": problem.index, "id": problem.id, "after_rounds": cfg.rounds}
    result |= final_sampling(loop, task, problem, samplers, cfg.final_k, seed)
    write_json(path, result)
    return result


def _summary(
    cfg: LangConfig,
    problems: list[Problem],
    records: list[dict[str, Any]],
    finals: list[dict[str, Any]],
    wall_s: float,
) -> dict[str, Any]:
    per_round = summarise_rounds(records, cfg.rounds_run)
    tokens = sum(r["usage"].get("tokens", 0) for r in records)
    final_tokens = sum(f["usage"].get("tokens", 0) for f in finals)
    summary: dict[str, Any] = {
        "task": cfg.task,
        "method": cfg.method,
        "ablation": cfg.ablation,
        "problems": len(problems),
        "rounds": cfg.rounds_run,
        "success_rate": [r["success_rate"] for r in per_round],
        "running_max_success": [r["running_max_success"] for r in per_round],
        "final_success": per_round[-1]["running_max_success"] if per_round else 0.0,
        "tokens_per_round": [r["tokens_mean"] for r in per_round],
        "tokens_total": tokens + final_tokens,
        "per_round": per_round,
        "wall_s_this_session": wall_s,
    }
    if cfg.task == "game24":
        summary["solvable_problems"] = sum(bool(p.data.get("solvable")) for p in problems)
    if finals:
        summary["final_k"] = cfg.final_k
        summary["mean_at_k"] = sum(f["mean_at_k"] for f in finals) / len(finals)
        summary["maj_at_k"] = sum(bool(f["maj_at_k"]) for f in finals) / len(finals)
    return summary
