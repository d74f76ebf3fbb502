"""Run a language method on N problems for R rounds into a resumable run directory.

Layout (on top of :class:`~icpi.core.rundir.RunDir`)::

    <run>/config.json            resolved configuration (written first; format 3)
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

``config.json`` states the reward the method sees (``reward_seen``), the context window
and where it came from (``context_window``), the prompt budget in tokens
(``context_budget``) and the prompt set with the source of each text (``prompts``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from icpi.core import Attempt, ExperienceBuffer, LLMSampler, Sampler
from icpi.core.estimate import ExpectationNotice
from icpi.core.files import append_jsonl, write_json, write_jsonl
from icpi.errors import ConfigError
from icpi.language import game24
from icpi.language.budget import CONTEXT_MARGIN, DEFAULT_CONTEXT_TOKENS, TokenBudget
from icpi.language.config import LANG_CONFIG_FORMAT, LangConfig, dump_lang_config, resolve
from icpi.language.metering import Samplers
from icpi.language.methods import LangContext, LangMethod, get_method
from icpi.language.prompts import prompt_set
from icpi.language.tasks import LanguageTask, Problem, get_task, load_math_problems
from icpi.llm import LLMClient, LLMConfig
from icpi.llm.window import endpoint_context_window
from icpi.session import RunSession

log = logging.getLogger(__name__)

#: Sampling parameters the runner sets on every call (``config.json`` records them as
#: ``per_call``; ``icpi lang`` has no flag for them and refuses them in ``--config``): the
#: policy's temperature, top_p and max_tokens are run settings (the papers' defaults), each
#: call's seed and n derive from the run seed and the method, stop sequences from the task.
PER_CALL = ("max_tokens", "n", "seed", "stop", "temperature", "top_p")
#: Characters of a response kept in records.jsonl (the buffer keeps it whole).
RECORD_TEXT_CHARS = 600
#: Expert demonstrations drawn for Game of 24 (solved by the reference solver).
GAME24_DEMOS = 50
#: Tokens of a judge's or helper's own prompt text (instructions, reference passage)
#: counted when sizing the response shown to it, at one token per character.
HELPER_OVERHEAD_TOKENS = 400


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
        Records with reward, success, running-max success, tokens and the response (its
        first :data:`RECORD_TEXT_CHARS` characters; ``response_chars`` is its length).
    """
    out = []
    solved = False
    for a in attempts:
        success = bool(a.info.get("success", False))
        solved = solved or success
        action = a.action
        response = str((action.get("response") if isinstance(action, Mapping) else action) or "")
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
            "response": response[:RECORD_TEXT_CHARS],
            "response_chars": len(response),
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


def make_samplers(
    cfg: LangConfig, task: LanguageTask[Any], client: LLMClient | None, sampler: Sampler | None
) -> Samplers:
    """The metered samplers of one problem (policy, judge, helper).

    Args:
        cfg: What to run (sampling, token limits, extra request fields).
        task: The task (stop sequences of a response).
        client: The model client (``None`` with a scripted ``sampler``).
        sampler: Use this sampler for every role instead of a model.

    Returns:
        The samplers.
    """

    def make(role: str) -> Sampler:
        if sampler is not None:
            return sampler
        assert client is not None
        extra: dict[str, Any] = {"extra_body": dict(cfg.extra_body)} if cfg.extra_body else {}
        if role == "policy":
            return LLMSampler(
                client, temperature=cfg.temperature, top_p=cfg.top_p,
                max_tokens=cfg.max_tokens, stop=list(task.stop), **extra,
            )  # fmt: skip
        tokens = cfg.judge_tokens if role == "judge" else cfg.helper_tokens
        return LLMSampler(client, temperature=0.0, top_p=1.0, max_tokens=tokens, **extra)

    return Samplers.build(make)


@dataclasses.dataclass(frozen=True)
class ContextWindow:
    """The context window a run plans its prompts for."""

    tokens: int
    """Window, tokens."""
    source: str
    """Where it comes from (``--context-tokens``, the embedded server, the endpoint, the
    default)."""


def resolve_window(
    cfg: LangConfig, llm: LLMConfig, *, scripted: bool = False, stored: Mapping[str, Any] | None
) -> ContextWindow:
    """The context window of a run.

    In order: ``--context-tokens`` (a prompt budget: the window is it plus the completion
    and margin); the window recorded by the run being resumed; a scripted sampler's
    (unknown: the default); the embedded server's ``n_ctx``; the window the endpoint
    reports (:func:`~icpi.llm.window.endpoint_context_window`: vLLM's ``max_model_len``
    and the like); else :data:`DEFAULT_CONTEXT_TOKENS`.

    Args:
        cfg: What to run.
        llm: The endpoint.
        scripted: A sampler stands in for the model.
        stored: ``config.json`` of the run being resumed (``None``: a new run).

    Returns:
        The window.
    """
    if cfg.context_tokens is not None:
        return ContextWindow(
            cfg.context_tokens + cfg.max_tokens + CONTEXT_MARGIN, "--context-tokens"
        )
    recorded = (stored or {}).get("context_window")
    if isinstance(recorded, Mapping) and isinstance(recorded.get("tokens"), int):
        return ContextWindow(int(recorded["tokens"]), str(recorded.get("source", "recorded")))
    if scripted:
        return ContextWindow(DEFAULT_CONTEXT_TOKENS, "default (scripted sampler)")
    if llm.embedded:
        return ContextWindow(llm.server_n_ctx, "embedded server n_ctx")
    if not llm.offline:
        found = endpoint_context_window(llm)
        if found is not None:
            return ContextWindow(found.tokens, f"endpoint {found.source}")
    log.warning(
        "the endpoint does not report its context window; planning prompts for %d tokens"
        " (a refusal that names the window lowers it; set --context-tokens for vLLM's"
        " --max-model-len or Ollama's num_ctx)", DEFAULT_CONTEXT_TOKENS,
    )  # fmt: skip
    return ContextWindow(DEFAULT_CONTEXT_TOKENS, "default")


def prompt_budget(cfg: LangConfig, window: ContextWindow) -> TokenBudget:
    """The policy's prompt budget in a window.

    Args:
        cfg: What to run (``max_tokens``, ``context_tokens``).
        window: The context window.

    Returns:
        The budget (``reserve``: the completion and margin of each request).

    Raises:
        ConfigError: If ``max_tokens`` leaves fewer than 256 tokens for the prompt.
    """
    reserve = cfg.max_tokens + CONTEXT_MARGIN
    tokens = cfg.context_tokens if cfg.context_tokens is not None else window.tokens - reserve
    if tokens < 256:
        raise ConfigError(
            f"max_tokens {cfg.max_tokens} leaves {tokens} tokens of the {window.tokens}-token"
            f" context ({window.source}) for the prompt; lower --max-tokens or set"
            " --context-tokens"
        )
    return TokenBudget(tokens, reserve=reserve)


def helper_chars(cfg: LangConfig, window: ContextWindow) -> int:
    """Longest response shown to a judge or helper, characters (one token per character).

    Args:
        cfg: What to run (``judge_tokens``, ``helper_tokens``).
        window: The context window.

    Returns:
        Characters (at least 400).
    """
    used = max(cfg.judge_tokens, cfg.helper_tokens) + CONTEXT_MARGIN + HELPER_OVERHEAD_TOKENS
    return max(window.tokens - used, 400)


def expert_demonstrations(
    task: LanguageTask[Any], expert_file: str | None, problems: Sequence[Problem]
) -> list[str]:
    """Solved examples for implicit expert forcing.

    Args:
        task: The task.
        expert_file: JSONL of ``question`` + ``solution`` rows (``None``: Game of 24's
            solver solutions).
        problems: The run's problems (never used as demonstrations).

    Returns:
        ``expert_file``'s rows, or for Game of 24 the reference solver's step-by-step
        solutions of :data:`GAME24_DEMOS` ranked puzzles evenly spread over the ranks
        outside the standard test split: the same set whatever ``--problems`` says, minus
        any puzzle of the run (only a run outside the test split can hold one).

    Raises:
        ConfigError: Without a source of demonstrations for the task, or on a bad file.
    """
    if expert_file:
        rows = load_math_problems(expert_file, answer_key="solution")
        return [f"{r['question'].strip()}\n{r['solution'].strip()}" for r in rows]
    if task.name != "game24":
        raise ConfigError(f"expert demonstrations for {task.name} need --expert-file")
    lo, hi = game24.TOT_TEST_RANKS
    ranked = task.ranked()  # type: ignore[attr-defined]
    pool = [r.numbers for r in ranked if not lo <= r.rank <= hi]
    step = max(1, len(pool) // GAME24_DEMOS)
    used = {tuple(p.data["numbers"]) for p in problems}
    demos = []
    for numbers in pool[::step][:GAME24_DEMOS]:
        if numbers in used:
            continue
        steps = game24.solution_steps(numbers)
        if steps:
            demos.append("\n".join([f"Input: {' '.join(map(str, numbers))}", *steps]))
    return demos


def problem_seed(seed: int, index: int) -> int:
    """Seed of one problem's model calls.

    Args:
        seed: Run seed.
        index: Problem index.

    Returns:
        A distinct non-negative seed per problem.
    """
    return (seed * 10_007 + index * 101 + 1) % (2**31 - 1)


def _stored_config(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == LANG_CONFIG_FORMAT else None


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
        ConfigError: On a bad configuration.
        RunDirError: On a directory holding another run.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    cfg = resolve(cfg)
    out = Path(out)
    prompts = prompt_set(cfg.prompts)
    task = get_task(cfg.task)(cfg.task_settings, prompts)
    method_cls = get_method(cfg.method)
    start = cfg.start if cfg.start is not None else task.default_start()
    problems = task.problems(cfg.seed, start, cfg.count(start))
    if not problems:
        raise ConfigError(f"no {task.name} problem from position {start}")
    llm = llm or LLMConfig.from_sources()
    window = resolve_window(cfg, llm, scripted=sampler is not None, stored=_stored_config(out))
    budget = prompt_budget(cfg, window)
    task.judge_chars = helper_chars(cfg, window)
    share = float(getattr(cfg.settings, "expert_share", 0.0))
    demos: list[str] = []
    if share > 0:
        demos = expert_demonstrations(task, getattr(cfg.settings, "expert_file", None), problems)
        if not demos:
            raise ConfigError(
                "expert_share > 0 but no demonstration is left (an empty --expert-file, or"
                " every ranked puzzle outside the test split is a problem of this run)"
            )
    base_ctx = LangContext(
        task=task,
        samplers=Samplers.build(lambda role: _Unused()),
        budget=budget,
        prompts=prompts,
        chat=cfg.chat,
        demonstrations=tuple(demos),
        helper_chars=helper_chars(cfg, window),
    )
    probe: LangMethod[Any] = method_cls(base_ctx, cfg.settings)  # validates settings × task
    notes = []
    leaked = task.leaks(problems)
    if leaked:
        notes.append(
            f"the {cfg.prompts} prompts show {', '.join(leaked)} solved as a demonstration in"
            " every prompt: its result is not a test result"
        )
        log.warning("note: %s", notes[-1])
    rounds = cfg.rounds_run
    config = {
        "kind": "language",
        "run": dump_lang_config(cfg),
        "reward_seen": probe.reward_seen(),
        "context_window": dataclasses.asdict(window),
        # Prompt budget in tokens (named without "token": the run directory drops such keys).
        "context_budget": budget.tokens,
        "prompts": {"set": prompts.name, "sources": dict(prompts.sources)},
        "notes": notes,
        "llm": llm.recorded(per_call=PER_CALL) if sampler is None else None,
        "sampler": type(sampler).__name__ if sampler is not None else None,
        "problems": [p.id for p in problems],
    }
    session = RunSession(
        out, config, seed=cfg.seed, llm=llm if sampler is None else None,
        what="language run", grow=("run.rounds",), config_format=LANG_CONFIG_FORMAT,
    )  # fmt: skip
    run_dir = session.run_dir
    (run_dir.path / "attempts").mkdir(exist_ok=True)
    records_path = run_dir.path / "records.jsonl"
    client = session.client if sampler is None else None
    lock = threading.Lock()
    stop = threading.Event()
    t0 = time.perf_counter()
    write_jsonl(records_path, [])
    buffers = {
        p.index: ExperienceBuffer(
            run_dir.path / "attempts" / f"{p.index:03d}.jsonl",
            fingerprint={"problem": p.id, "method": cfg.method},
        )
        for p in problems
    }
    left = sum(max(0, rounds - len(b)) for b in buffers.values())
    notice = None
    if sampler is None and left:
        at_once = 1 if llm.embedded else concurrency  # the embedded server answers one
        notice = ExpectationNotice(f"language run {out}", left, at_once, unit="round")

    def run_problem(problem: Problem) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        ctx = dataclasses.replace(base_ctx, samplers=make_samplers(cfg, task, client, sampler))
        method = method_cls(ctx, cfg.settings)
        seed = problem_seed(cfg.seed, problem.index)
        buffer = buffers[problem.index]
        loop, usage = method.build(problem, buffer=buffer, seed=seed)
        meter = ctx.samplers.meter
        done = len(buffer)
        with lock:
            for rec in round_records(problem, buffer.attempts[:rounds]):
                append_jsonl(records_path, rec)
        for r in range(done, rounds):
            if stop.is_set():
                return [], None
            usage.start_round()
            live_calls, live_s = meter.live_calls, meter.live_s
            buffer.append(loop.step(loop.state()))
            if notice is not None:
                notice.observe(meter.live_s - live_s, live=meter.live_calls > live_calls)
            rec = round_records(problem, buffer.attempts)[-1]
            with lock:
                append_jsonl(records_path, rec)
            log.info(
                "%s %s round %d: reward %.3g, success %s, %d tokens",
                cfg.method, problem.id, r, rec["reward"], rec["success"],
                rec["usage"].get("tokens", 0),
            )  # fmt: skip
        final = _final(run_dir.path, method, loop, problem, cfg.rounds, seed)
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
        summary = summarise_run(cfg, problems, records, finals, time.perf_counter() - t0)
        summary["reward_seen"] = config["reward_seen"]
        summary["context_budget"] = budget.tokens
        write_json(run_dir.path / "summary.json", summary)
    finally:
        session.close()
    return summary


class _Unused:
    """A sampler that must not be called (the method object that only validates)."""

    def sample(self, prompt: Any, n: int, seed: int | None) -> Any:
        raise RuntimeError("this sampler only stands in while the settings are checked")


def _final(
    path: Path, method: LangMethod[Any], loop: Any, problem: Problem, rounds: int, seed: int
) -> dict[str, Any] | None:
    file = path / "attempts" / f"{problem.index:03d}.final.json"
    if file.exists():
        data: dict[str, Any] = json.loads(file.read_text())
        if data.get("after_rounds", rounds) == rounds:
            return data
    result = method.finish(loop, problem, seed)
    if result is None:
        return None
    result = {"problem": problem.index, "id": problem.id, "after_rounds": rounds, **result}
    write_json(file, result)
    return result


def summarise_run(
    cfg: LangConfig,
    problems: list[Problem],
    records: list[dict[str, Any]],
    finals: list[dict[str, Any]],
    wall_s: float,
) -> dict[str, Any]:
    """The summary of a run (``summary.json``).

    Args:
        cfg: What ran.
        problems: Its problems.
        records: Its round records.
        finals: ME-ICPO's final samples per problem.
        wall_s: Wall time of this session, seconds.

    Returns:
        Success rate and running-max success per round, final success, tokens, and for
        ME-ICPO Mean@k and Maj@k.
    """
    per_round = summarise_rounds(records, cfg.rounds_run)
    tokens = sum(r["usage"].get("tokens", 0) for r in records)
    final_tokens = sum(f["usage"].get("tokens", 0) for f in finals)
    summary: dict[str, Any] = {
        "task": cfg.task,
        "method": cfg.method,
        "ablation": getattr(cfg.settings, "ablation", None),
        "prompts": cfg.prompts,
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
        summary["final_k"] = finals[0].get("k")
        summary["mean_at_k"] = sum(f["mean_at_k"] for f in finals) / len(finals)
        summary["maj_at_k"] = sum(bool(f["maj_at_k"]) for f in finals) / len(finals)
    return summary
