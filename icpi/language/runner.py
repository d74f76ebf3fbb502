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
run without a model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from icpi.language.common import RoundUsage, Samplers
from icpi.language.icrl import BASELINES, ICRL_ABLATIONS, ICRL_METHODS, build_icrl_loop
from icpi.language.me_icpo import (
    ME_ABLATIONS,
    MeIcpoSettings,
    build_me_icpo_loop,
    final_sampling,
)
from icpi.language.tasks import LanguageTask, Problem, make_task
from icpi.llm import LLMClient, LLMConfig
from icpi.session import RunSession

log = logging.getLogger(__name__)

METHODS = (*ICRL_METHODS, *BASELINES, "me-icpo")
TASKS = ("game24", "writing", "math")
#: Characters of a response kept in records.jsonl.
RECORD_TEXT_CHARS = 600


@dataclass(frozen=True)
class LangConfig:
    """What to run (the resolved config is written to ``config.json``)."""

    task: Literal["game24", "writing", "math"] = "game24"
    """Task id."""
    method: str = "icrl-preset"
    """``icrl-preset``, ``icrl-autonomous``, ``best-of-n``, ``self-refine``, ``reflexion``
    or ``me-icpo``."""
    ablation: str | None = None
    """ICRL: ``zero-reward``, ``no-reward``, ``short-context``, ``explore-only``,
    ``exploit-only``, ``no-instruction``; ME-ICPO: ``no-entropy``, ``no-reward``,
    ``oracle``."""
    problems: int = 5
    """Number of problems."""
    rounds: int = 5
    """Rounds per problem (ICRL: one response each; ME-ICPO: k candidates each)."""
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
    step_judge: Literal["rule", "llm"] = "rule"
    """Game of 24 step rewards: rule-based checker or LLM judge."""
    puzzles: Literal["solvable", "unsolvable", "any"] = "solvable"
    """Which generated Game of 24 puzzles to use."""
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

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r} (choose from {METHODS})")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} (choose from {TASKS})")
        allowed = ME_ABLATIONS if self.method == "me-icpo" else ICRL_ABLATIONS
        if self.ablation is not None and (self.ablation not in allowed or self.method in BASELINES):
            raise ValueError(f"ablation {self.ablation!r} does not apply to {self.method}")
        if self.method == "me-icpo" and self.task == "writing":
            raise ValueError("ME-ICPO votes on final answers; the writing task has none")
        if self.task == "math" and not self.math_file:
            raise ValueError("the math task needs a math_file (JSONL with question, answer)")
        if min(self.problems, self.rounds, self.k, self.entropy_k, self.final_k) < 1:
            raise ValueError("problems, rounds, k, entropy_k and final_k must be >= 1")


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


def _public_llm(llm: LLMConfig) -> dict[str, Any]:
    return llm.recorded()


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


def _build_loop(
    cfg: LangConfig,
    task: LanguageTask,
    problem: Problem,
    samplers: Samplers,
    buffer: ExperienceBuffer,
    seed: int,
) -> tuple[ImprovementLoop, RoundUsage]:
    if cfg.method == "me-icpo":
        settings = MeIcpoSettings(
            k=cfg.k, entropy_k=cfg.entropy_k, final_k=cfg.final_k, ablation=cfg.ablation
        )
        return build_me_icpo_loop(
            task, problem, samplers, settings, buffer=buffer, seed=seed, chat=cfg.chat
        )
    return build_icrl_loop(
        cfg.method,
        task,
        problem,
        samplers,
        ablation=cfg.ablation,
        buffer=buffer,
        seed=seed,
        chat=cfg.chat,
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
) -> dict[str, Any]:
    """Run (or resume) one method on a task's problems.

    Args:
        cfg: What to run.
        out: Run directory (resumed when it holds the same run).
        llm: Model endpoint; ``None`` resolves the default (embedded) one.
        sampler: Use this sampler for every role instead of a model (tests, dry runs).

    Returns:
        The summary (also written to ``summary.json``).
    """
    task = make_task(
        cfg.task,
        step_judge=cfg.step_judge,
        puzzles=cfg.puzzles,
        math_file=cfg.math_file,
        threshold=cfg.threshold,
    )
    problems = task.problems(cfg.problems, cfg.seed)
    llm = llm or LLMConfig.from_sources()
    config = {
        "run": dataclasses.asdict(cfg),
        "llm": _public_llm(llm) if sampler is None else {"sampler": type(sampler).__name__},
        "problems": [p.id for p in problems],
    }
    session = RunSession(
        out, config, seed=cfg.seed, llm=llm if sampler is None else None, what="language run"
    )
    run_dir = session.run_dir
    (run_dir.path / "attempts").mkdir(exist_ok=True)
    records_path = run_dir.path / "records.jsonl"
    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []
    finals: list[dict[str, Any]] = []
    write_jsonl(records_path, [])
    try:
        samplers = _make_samplers(cfg, task, session.client if sampler is None else None, sampler)
        for problem in problems:
            seed = problem_seed(cfg.seed, problem.index)
            buffer = ExperienceBuffer(
                run_dir.path / "attempts" / f"{problem.index:03d}.jsonl",
                fingerprint={"problem": problem.id, "method": cfg.method},
            )
            loop, usage = _build_loop(cfg, task, problem, samplers, buffer, seed)
            done = len(buffer)
            for rec in round_records(problem, buffer.attempts):
                append_jsonl(records_path, rec)
            for r in range(done, cfg.rounds):
                usage.start_round()
                loop.run(Budget(max_iterations=r + 1))
                rec = round_records(problem, buffer.attempts)[-1]
                append_jsonl(records_path, rec)
                log.info(
                    "%s %s round %d: reward %.3g, success %s, %d tokens",
                    cfg.method,
                    problem.id,
                    r,
                    rec["reward"],
                    rec["success"],
                    rec["usage"].get("tokens", 0),
                )
            records += round_records(problem, buffer.attempts)
            if cfg.method == "me-icpo":
                finals.append(_final(run_dir, loop, task, problem, samplers, cfg, seed))
        write_jsonl(records_path, records)
        summary = _summary(cfg, problems, records, finals, time.perf_counter() - t0)
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
        return data
    result = {"problem": problem.index, "id": problem.id}
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
    per_round = summarise_rounds(records, cfg.rounds)
    tokens = sum(r["usage"].get("tokens", 0) for r in records)
    final_tokens = sum(f["usage"].get("tokens", 0) for f in finals)
    summary: dict[str, Any] = {
        "task": cfg.task,
        "method": cfg.method,
        "ablation": cfg.ablation,
        "problems": len(problems),
        "rounds": cfg.rounds,
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
