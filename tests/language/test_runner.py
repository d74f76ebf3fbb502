"""The run directory of ``icpi lang``: records, summary, resume, config guard, CLI."""

import json

import pytest
from lang_support import EXACT, SOLUTION_3457, build

from icpi.cli.main import main
from icpi.core import ScriptedSampler
from icpi.errors import ConfigError
from icpi.language.config import lang_config
from icpi.language.prompts import PACKAGE
from icpi.language.runner import run_language, summarise_rounds


def exact_cfg(**kw):
    """A run with exact Game of 24 rewards (no judge calls): tests of the run mechanics."""
    return lang_config(**{**EXACT, **kw})


def model_solving(numbers_text, solution):
    """Answers the puzzle ``numbers_text`` right on odd seeds, else wrongly."""

    def model(prompt, n, seed):
        right = f"Input: {numbers_text}" in prompt.splitlines()[-1] and seed % 2 == 1
        return [solution if right else "Step1: 1 + 1 = 2 (left: 2)\nAnswer: 1 + 1 = 2"] * n

    return model


class Killed(RuntimeError):
    pass


def test_records_summary_and_resume(tmp_path):
    cfg = exact_cfg(task="game24", method="icrl-preset", problems=3, rounds=3)
    calls = []
    die_at = [5]

    def dying(prompt, n, seed):
        calls.append(seed)
        if len(calls) == die_at[0]:
            raise Killed("killed mid-run")
        return ["Step1: 1 + 1 = 2 (left: 2)\nAnswer: 1 + 1 = 2"] * n

    with pytest.raises(Killed):
        run_language(cfg, tmp_path / "run", sampler=ScriptedSampler(dying))
    lines = (tmp_path / "run" / "attempts" / "001.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 1  # header + the one finished round of problem 1
    calls.clear()
    die_at[0] = -1
    summary = run_language(cfg, tmp_path / "run", sampler=ScriptedSampler(dying))
    assert len(calls) == 9 - 4  # only the unfinished rounds ran
    records = [json.loads(x) for x in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert [(r["problem"], r["round"]) for r in records] == [
        (p, r) for p in range(3) for r in range(3)
    ]
    assert summary["success_rate"] == [0.0, 0.0, 0.0] and summary["problems"] == 3
    assert len(summary["tokens_per_round"]) == 3 and all(t > 0 for t in summary["tokens_per_round"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["method"] == "icrl-preset"
    for name in ("config.json", "meta.json"):
        assert (tmp_path / "run" / name).exists()
    # A finished run reopened does no new work.
    calls.clear()
    run_language(cfg, tmp_path / "run", sampler=ScriptedSampler(dying))
    assert calls == []


def test_another_config_is_refused(tmp_path):
    sampler = ScriptedSampler(["x"])
    run_language(exact_cfg(problems=1, rounds=1), tmp_path / "run", sampler=sampler)
    with pytest.raises(ValueError, match="another configuration"):
        run_language(exact_cfg(problems=1, rounds=2, seed=1), tmp_path / "run", sampler=sampler)


def test_success_and_running_max(tmp_path):
    from icpi.language.tasks import Game24Task

    first = Game24Task().problems(0, 900, 1)[0]  # rank 901 of the standard split
    solution = first.data["solution"]
    text = " ".join(map(str, first.data["numbers"]))
    sampler = ScriptedSampler(model_solving(text, f"Answer: {solution} = 24"))
    summary = run_language(
        exact_cfg(method="best-of-n", problems=2, rounds=4), tmp_path / "r", sampler=sampler
    )
    rates, running = summary["success_rate"], summary["running_max_success"]
    assert all(0.0 <= x <= 0.5 for x in rates) and max(rates) == 0.5
    assert running == sorted(running) and running[-1] == 0.5 == summary["final_success"]


def test_me_icpo_run_writes_final_samples(tmp_path):
    sampler = ScriptedSampler([SOLUTION_3457, "Answer: 1 + 2 = 3", "junk"])
    cfg = exact_cfg(method="me-icpo", problems=2, rounds=2, k=3, entropy_k=2, final_k=3)
    summary = run_language(cfg, tmp_path / "me", sampler=sampler)
    assert 0.0 <= summary["mean_at_k"] <= 1.0 and summary["final_k"] == 3
    final = json.loads((tmp_path / "me" / "attempts" / "000.final.json").read_text())
    assert len(final["answers"]) == 3
    roles = [json.loads(x)["usage"]["by_role"] for x in (tmp_path / "me" / "records.jsonl").open()]
    assert any("helper" in r for r in roles)  # summaries counted in the round's tokens


def test_summarise_rounds_counts_only_reached_rounds():
    recs = [
        {
            "round": 0,
            "success": False,
            "running_success": False,
            "reward": 0.0,
            "usage": {"tokens": 10},
        },
        {
            "round": 0,
            "success": True,
            "running_success": True,
            "reward": 19.0,
            "usage": {"tokens": 30},
        },
        {
            "round": 1,
            "success": False,
            "running_success": True,
            "reward": 3.0,
            "usage": {"tokens": 50},
        },
    ]
    out = summarise_rounds(recs, 3)
    assert [r["problems"] for r in out] == [2, 1]
    assert out[0]["success_rate"] == 0.5 and out[0]["tokens_mean"] == 20
    assert out[1]["running_max_success"] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "nope"},
        {"task": "chess"},
        {"method": "best-of-n", "ablation": "zero-reward"},
        {"method": "me-icpo", "ablation": "short-context"},
        {"method": "icrl-preset", "ablation": "oracle"},
        {"rounds": 0},
        {"task": "writing", "method": "me-icpo"},
        {"task": "math"},
    ],
)
def test_bad_configs(kwargs):
    with pytest.raises(ConfigError):
        cfg = lang_config(**kwargs)
        run_language(cfg, "/nonexistent/never-created", sampler=ScriptedSampler(["x"]))


def test_cli_rejects_bad_combination(tmp_path, capsys):
    code = main(
        ["lang", "--task", "game24", "--method", "best-of-n", "--ablation", "no-reward",
         "--out", str(tmp_path / "x")]
    )  # fmt: skip
    assert code == 2 and "does not apply" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_help_lists_the_verb(capsys):
    with pytest.raises(SystemExit):
        main(["lang", "--help"])
    out = "".join(capsys.readouterr().out.split())  # argparse wraps at hyphens
    flags = (
        "--k", "--entropy-k", "--max-tokens", "--ablation", "--step-judge", "--math-file",
        "--answer-judge", "--split", "--puzzles", "--context-tokens", "--llm-concurrency",
        "--expert-share", "--expert-file", "--expert-reject", "--expert-bonus", "cot-only",
        "long-cot", "no-entropy+no-reward", "--prompts", "--start", "--end", "--extra-body",
    )  # fmt: skip
    for flag in flags:
        assert flag in out


def test_task_text_mentions_the_format():
    assert "Answer" in PACKAGE.game24_task and "{numbers}" in PACKAGE.game24_task


def test_an_endpoint_down_stops_the_run_but_failed_calls_do_not(tmp_path):
    from icpi.llm.errors import LLMEmptyResponseError, LLMEndpointDownError

    def down(prompt, n, seed):
        raise LLMEndpointDownError("endpoint unreachable for 120 s")

    cfg = exact_cfg(problems=1, rounds=2)
    with pytest.raises(LLMEndpointDownError):
        run_language(cfg, tmp_path / "r", sampler=ScriptedSampler(down))
    assert len((tmp_path / "r" / "attempts" / "000.jsonl").read_text().splitlines()) == 1

    def empty(prompt, n, seed):
        raise LLMEmptyResponseError("only empty samples")

    summary = run_language(cfg, tmp_path / "r", sampler=ScriptedSampler(empty))
    assert summary["success_rate"] == [0.0, 0.0]
    recs = [json.loads(x) for x in (tmp_path / "r" / "records.jsonl").open()]
    assert [r["source"] for r in recs] == ["fallback", "fallback"]


def test_writing_and_math_runs(tmp_path):
    def model(prompt, n, seed):
        if "Coherence score:" in prompt:
            return ["Coherence score: 8"]
        return ["Plan: p\nPassage: text <answer>42</answer>"] * n

    w = run_language(
        lang_config(task="writing", method="icrl-autonomous", problems=1, rounds=2),
        tmp_path / "w",
        sampler=ScriptedSampler(model),
    )
    assert w["success_rate"] == [1.0, 1.0] and w["per_round"][0]["mean_reward"] == 8.0
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "6 * 7?", "answer": "42"}\n{"question": "1 + 1?", "answer": "2"}\n')
    m = run_language(
        lang_config(task="math", method="me-icpo", problems=2, rounds=1, k=2, entropy_k=2,
                    final_k=2, math_file=str(f)),
        tmp_path / "m",
        sampler=ScriptedSampler(model),
    )  # fmt: skip
    assert m["success_rate"] == [0.5] and m["mean_at_k"] == 0.5 and m["maj_at_k"] == 0.5


def test_math_icrl_context_is_sorted_by_reward(tmp_path, puzzle):
    from icpi.core import Budget
    from icpi.language.metering import Samplers
    from icpi.language.tasks import MathSettings, MathTask, Problem

    answers = iter(
        ["<answer>1</answer> first", "<answer>42</answer> right", "<answer>3</answer> x"]
    )
    sampler = ScriptedSampler(lambda prompt, n, seed: [next(answers, "none")])
    task = MathTask(MathSettings(math_file=str(tmp_path / "unused.jsonl")))
    problem = Problem(0, "math:0", {"question": "6 * 7?", "answer": "42"})
    loop = build("icrl-preset", task, problem, Samplers.build(lambda r: sampler))
    loop.run(Budget(max_iterations=4))
    last = sampler.calls[-1][0]
    # Best attempt last (nearest the task), the others before it.
    assert last.index("first") < last.index("right") and last.index(" x\n") < last.index("right")
    assert last.index("right") < last.index("Problem: 6 * 7?")
