"""The report page of a language run (``icpi lang``): rounds, prompts, answers, rewards.

One self-contained HTML file: the run's configuration (any ``config.json`` format, read
through :func:`icpi.language.config.read_run_config`), the success rate and running-max
success per round with the mean reward (a figure and a table), and per problem every
round's prompt, whole response, reward (with the judge's answers) and success, and
ME-ICPO's final samples.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from icpi.core.files import read_jsonl, write_text_atomic
from icpi.errors import RunDirError
from icpi.report.rundata import ReportError

#: Characters of a prompt shown in full (a longer one is cut in the middle, and says so).
PROMPT_CHARS = 40_000


def _attempts(path: Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path)
    return [r["attempt"] for r in rows if isinstance(r, dict) and r.get("kind") == "attempt"]


def _shown_prompt(prompt: Any) -> str:
    """A prompt as the page shows it (a very long one cut in the middle, saying so)."""
    from icpi.report.page import _prompt_text

    text = _prompt_text(prompt) if prompt is not None else "(no prompt recorded)"
    if len(text) > PROMPT_CHARS:
        half = PROMPT_CHARS // 2
        cut = len(text) - PROMPT_CHARS
        text = f"{text[:half]}\n[… {cut} characters not shown …]\n{text[-half:]}"
    return text


def _response(action: Any) -> str:
    if isinstance(action, dict):
        return str(action.get("response") or "")
    return str(action or "")


def _rounds(attempts: list[dict[str, Any]], rounds: int) -> list[dict[str, Any]]:
    out = []
    solved = False
    for a in attempts[:rounds]:
        info = a.get("info") or {}
        success = bool(info.get("success", False))
        solved = solved or success
        action = a.get("action")
        extra = {}
        if isinstance(action, dict) and action.get("summary"):
            extra["summary"] = action["summary"]
        for key in ("feedback", "reflection"):
            if info.get(key):
                extra[key] = info[key]
        out.append(
            {
                "round": a.get("iteration"),
                "reward": a.get("reward"),
                "success": success,
                "running": solved,
                "source": a.get("source"),
                "answer": info.get("answer"),
                "tokens": (info.get("usage") or {}).get("tokens"),
                "prompt": _shown_prompt(a.get("prompt")),
                "response": _response(action),
                "judge": list(info.get("judge_answers") or []),
                "extra": extra,
            }
        )
    return out


def write_language_report(directory: Path, target: Path) -> dict[str, Any]:
    """Write the report page of a language run directory.

    Args:
        directory: The run directory.
        target: The HTML file.

    Returns:
        ``{"problems", "rounds", "bytes", "notes"}``.

    Raises:
        ReportError: If the directory cannot be read as a language run.
    """
    from icpi.core import Attempt
    from icpi.language.config import read_run_config
    from icpi.language.runner import round_records, summarise_rounds
    from icpi.language.tasks import Problem
    from icpi.report.figures import round_curves
    from icpi.report.page import _environment, _version, fmt

    try:
        config = read_run_config(directory)
    except RunDirError as err:
        raise ReportError(str(err)) from None
    run = config.get("run") or {}
    rounds = int(run.get("rounds") or 0)
    if run.get("method") in ("cot-only", "long-cot"):
        rounds = 1
    notes = list(config.get("notes") or [])
    if config.get("migrated_from"):
        notes.append(
            f"written by an earlier icpi (config.json format {config['migrated_from']}); shown"
            " in the current shape"
        )
    problems = []
    records: list[dict[str, Any]] = []
    for i, pid in enumerate(config.get("problems") or []):
        path = directory / "attempts" / f"{i:03d}.jsonl"
        attempts = _attempts(path) if path.exists() else []
        problem = Problem(index=i, id=str(pid))
        records += round_records(problem, [Attempt.from_dict(a) for a in attempts[:rounds]])
        final_path = directory / "attempts" / f"{i:03d}.final.json"
        final = json.loads(final_path.read_text()) if final_path.exists() else None
        problems.append(
            {"id": pid, "index": i, "rounds": _rounds(attempts, rounds), "final": final}
        )
    if not records:
        raise ReportError(f"{directory} holds no finished round of a language run")
    per_round = summarise_rounds(records, rounds)
    summary_file = directory / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    title = f"{run.get('method')} on {run.get('task')} ({len(problems)} problems)"
    meta_file = directory / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    context = {
        "kind": "language run",
        "directory": str(directory.resolve()),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "version": _version(),
        "git_shas": [meta["git_sha"]] if meta.get("git_sha") else [],
        "versions": meta.get("versions"),
        "notes": notes,
        "title": title,
        "setting": [(k, fmt(v)) for k, v in run.items()],
        "reward_seen": config.get("reward_seen", "?"),
        "context": fmt(config.get("context_window") or config.get("context_budget")),
        "prompt_set": (config.get("prompts") or {}).get("set", run.get("prompts", "package")),
        "per_round": per_round,
        "summary": [
            (k, fmt(summary[k]))
            for k in ("final_success", "mean_at_k", "maj_at_k", "tokens_total")
            if k in summary
        ],
        "figure": round_curves(per_round, title),
        "problems": problems,
    }
    html = _environment().get_template("language.html.j2").render(**context)
    write_text_atomic(target, html)
    return {
        "problems": len(problems),
        "rounds": len(records),
        "bytes": len(html.encode("utf-8")),
        "notes": notes,
    }
