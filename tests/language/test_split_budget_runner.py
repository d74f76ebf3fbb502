"""Issue 10: the standard split and puzzle files, the token budget against a real HTTP
endpoint, extending a run, concurrency, and what config.json states."""

import itertools
import json
import sys
import time
from pathlib import Path

import pytest
from lang_support import EXACT, SOLUTION_3457

from icpi.cli.main import main
from icpi.core import ScriptedSampler
from icpi.language import game24
from icpi.language.config import lang_config
from icpi.language.runner import run_language
from icpi.language.tasks import Game24Settings, Game24Task
from icpi.llm import LLMConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from fake_openai import Reply, completion_body


# --------------------------------------------------------------------------- the split
@pytest.mark.slow
def test_standard_ranking_is_exactly_the_solvers_1362_solvable_puzzles():
    ranking = game24.standard_ranking()
    combos = itertools.combinations_with_replacement(range(1, 14), 4)
    assert len(ranking) == 1362 == len(set(ranking))
    assert set(ranking) == {c for c in combos if game24.is_solvable(c)}


def test_tot_test_is_ranks_901_to_1000():
    probs = Game24Task().problems(0, 900, 100)
    assert [p.data["rank"] for p in probs] == list(range(901, 1001))
    # Rank 901 opens the ToT test set; rank 1000 is the paper's Figure 10 example.
    assert probs[0].data["numbers"] == [4, 5, 6, 10] and probs[-1].data["numbers"] == [4, 9, 10, 13]
    assert all(p.data["solvable"] for p in probs)
    assert Game24Task(Game24Settings(split="all")).problems(0, 0, 3)[0].data["numbers"] == [
        1, 1, 4, 6,
    ]  # fmt: skip


def test_puzzle_files_csv_in_tot_format_and_jsonl(tmp_path):
    csv = tmp_path / "24.csv"
    csv.write_text(
        "Rank,Puzzles,AMT (s),Solved rate\n"
        "902,1 2 4 7,10.1,90%\n901,4 5 6 10,10.0,91%\n5,1 1 1 1,4.0,99%\n"
    )
    task = Game24Task(Game24Settings(puzzles_file=str(csv)))
    start = task.default_start()
    assert start == 1  # the position of rank 901 in this file
    assert [p.data["numbers"] for p in task.problems(0, start, 10)] == [
        [4, 5, 6, 10], [1, 2, 4, 7],
    ]  # fmt: skip
    everything = Game24Task(Game24Settings(split="all", puzzles_file=str(csv))).problems(0, 0, 10)
    assert [p.data["rank"] for p in everything] == [5, 901, 902]
    assert everything[0].data["solvable"] is False  # classified by the solver
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"numbers": [13, 2, 3, 4]}\n\n{"numbers": "8 8 3 3", "rank": 7}\n')
    rows = game24.load_puzzles(jl)
    assert [(r.rank, r.numbers) for r in rows] == [(1, (2, 3, 4, 13)), (7, (3, 3, 8, 8))]
    with pytest.raises(ValueError, match="rank in 901"):
        Game24Task(Game24Settings(puzzles_file=str(jl))).problems(0, 0, 5)


@pytest.mark.parametrize(
    "text, match",
    [
        ("Rank,Other\n1,2\n", "Puzzles"),
        ("Puzzles\n1 2 3\n", "four integers"),
        ("Puzzles\n1 2 x 4\n", "four integers"),
        ("Rank,Puzzles\n1,1 2 3 4\n1,2 3 4 5\n", "duplicated"),
        ("Puzzles\n", "no puzzles"),
    ],
)
def test_bad_puzzle_files_name_the_problem(tmp_path, text, match):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError, match=match):
        game24.load_puzzles(f)


def test_cli_runs_a_puzzle_file_and_states_the_reward(tmp_path, capsys, monkeypatch):
    f = tmp_path / "p.jsonl"
    f.write_text('{"numbers": [3, 4, 5, 7]}\n')
    import icpi.language.runner as runner

    real = runner.run_language
    monkeypatch.setattr(
        runner, "run_language",
        lambda cfg, out, llm=None, concurrency=1: real(
            cfg, out, sampler=ScriptedSampler([SOLUTION_3457]), concurrency=concurrency
        ),
    )  # fmt: skip
    code = main(
        ["lang", "--task", "game24", "--puzzles", str(f), "--split", "all", "--problems", "1",
         "--rounds", "1", "--step-judge", "rule", "--answer-judge", "verifier",
         "--out", str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["problems"] == ["24:3 4 5 7"] and "exact solver" in config["reward_seen"]
    summary = json.loads(capsys.readouterr().out)
    assert summary["final_success"] == 1.0
    # A run is extended, never cut: one line and exit 2, not a traceback.
    code = main(
        ["lang", "--task", "game24", "--puzzles", str(f), "--split", "all", "--problems", "1",
         "--rounds", "0", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 2 and "must be >= 1" in capsys.readouterr().err
    code = main(
        ["lang", "--task", "game24", "--puzzles", str(tmp_path / "missing.csv"), "--out",
         str(tmp_path / "x")]
    )  # fmt: skip
    assert code == 2 and "missing.csv" in capsys.readouterr().err


def test_config_states_the_papers_reward_and_the_budget(tmp_path):
    cfg = lang_config(problems=1, rounds=1, context_tokens=1500)
    run_language(cfg, tmp_path / "r", sampler=ScriptedSampler(["Answer: 0"]))
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert "model's own judge" in config["reward_seen"] and "never shown" in config["reward_seen"]
    assert config["context_budget"] == 1500
    judges = config["run"]["task_settings"]
    assert judges["step_judge"] == "llm" and judges["answer_judge"] == "llm"


# --------------------------------------------------------------------------- budget
def limited_server(fake, window_tokens, answer, delay_s=0.0):
    """A completion endpoint that counts a token per character and refuses long prompts."""

    def respond(path, body):
        n = len(body["prompt"])
        if n > window_tokens:
            msg = f"Requested tokens ({n}) exceed context window of {window_tokens}"
            return Reply(status=400, body={"error": {"message": msg, "type": "invalid_request"}})
        return Reply(body=completion_body(answer, prompt_tokens=n), delay_s=delay_s)

    fake.responder = respond


def http_llm(fake, tmp_path, **kw):
    return LLMConfig(
        base_url=fake.base_url, model="fake", cache_path=tmp_path / "c.sqlite3", timeout_s=5.0,
        max_retries=0, **kw,
    )  # fmt: skip


def test_a_long_run_keeps_the_newest_attempts_that_fit_and_never_dies(fake, tmp_path):
    limited_server(fake, 3200, SOLUTION_3457 + "\n" + "I also tried many other things. " * 8)
    cfg = lang_config(
        problems=1, rounds=12, split="random", context_tokens=3000, max_tokens=64, **EXACT
    )
    summary = run_language(cfg, tmp_path / "r", llm=http_llm(fake, tmp_path))
    assert len(summary["success_rate"]) == 12
    prompts = [r["body"]["prompt"] for r in fake.requests]
    assert max(len(p) for p in prompts) <= 3000  # the budget held (1 token per character)
    counts = [p.count("<attempt>\nResponse") for p in prompts]
    assert counts[:3] == [0, 1, 2] and counts[-1] < 11  # old attempts were dropped
    assert counts[-1] >= 3  # ... and the newest kept
    last = prompts[-1]
    assert last.rstrip().endswith(Game24Task().describe(_problem(cfg)).splitlines()[-1])


def _problem(cfg):
    return Game24Task(Game24Settings(split="random")).problems(cfg.seed, 0, 1)[0]


def test_a_context_refusal_is_a_failed_round_then_the_budget_shrinks(fake, tmp_path):
    limited_server(fake, 1500, SOLUTION_3457 + "\n" + "more words " * 30)
    # The stated budget is too large for this endpoint: it refuses, the run goes on.
    cfg = lang_config(
        problems=1, rounds=10, split="random", context_tokens=5000, max_tokens=64, **EXACT
    )
    summary = run_language(cfg, tmp_path / "r", llm=http_llm(fake, tmp_path))
    assert len(summary["success_rate"]) == 10
    recs = [json.loads(x) for x in (tmp_path / "r" / "records.jsonl").open()]
    sources = [r["source"] for r in recs]
    assert "fallback" in sources and sources[-1] == "model"  # refused once, then fits


# --------------------------------------------------------------------------- extend, concurrency
def test_a_finished_run_is_extended_with_more_rounds(tmp_path):
    calls = []

    def model(prompt, n, seed):
        calls.append(seed)
        return [SOLUTION_3457] * n

    base = {"problems": 2, "split": "random", **EXACT}
    run_language(lang_config(rounds=2, **base), tmp_path / "r", sampler=ScriptedSampler(model))
    assert len(calls) == 4
    calls.clear()
    summary = run_language(
        lang_config(rounds=4, **base), tmp_path / "r", sampler=ScriptedSampler(model)
    )
    assert len(calls) == 4 and len(summary["success_rate"]) == 4  # only rounds 2 and 3 ran
    assert json.loads((tmp_path / "r" / "config.json").read_text())["run"]["rounds"] == 4
    recs = [json.loads(x) for x in (tmp_path / "r" / "records.jsonl").open()]
    assert [(r["problem"], r["round"]) for r in recs] == [
        (p, i) for p in range(2) for i in range(4)
    ]
    with pytest.raises(ValueError, match="extended, never cut"):
        run_language(lang_config(rounds=3, **base), tmp_path / "r", sampler=ScriptedSampler(model))
    with pytest.raises(ValueError, match="another configuration"):
        run_language(
            lang_config(rounds=5, temperature=0.9, **base), tmp_path / "r",
            sampler=ScriptedSampler(model),
        )  # fmt: skip


def test_me_icpo_final_samples_are_redrawn_after_an_extension(tmp_path):
    base = {"method": "me-icpo", "problems": 1, "k": 2, "entropy_k": 2, "final_k": 2, **EXACT}
    s = ScriptedSampler([SOLUTION_3457])
    run_language(lang_config(rounds=1, split="random", **base), tmp_path / "r", sampler=s)
    path = tmp_path / "r" / "attempts" / "000.final.json"
    assert json.loads(path.read_text())["after_rounds"] == 1
    run_language(lang_config(rounds=2, split="random", **base), tmp_path / "r", sampler=s)
    assert json.loads(path.read_text())["after_rounds"] == 2


def test_problems_run_concurrently_against_one_endpoint(fake, tmp_path):
    limited_server(fake, 100_000, SOLUTION_3457, delay_s=0.2)
    cfg = lang_config(problems=4, rounds=2, split="random", max_tokens=64, **EXACT)
    t0 = time.perf_counter()
    run_language(cfg, tmp_path / "one", llm=http_llm(fake, tmp_path, use_cache=False))
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_language(cfg, tmp_path / "four", llm=http_llm(fake, tmp_path, use_cache=False),
                 concurrency=4)  # fmt: skip
    parallel = time.perf_counter() - t0
    assert parallel < serial * 0.6  # 8 requests of 0.2 s: ~1.6 s serial, ~0.4 s with 4

    def strip(path):
        rs = [json.loads(x) for x in (path / "records.jsonl").open()]
        return [(r["problem"], r["round"], r["response"], r["reward"]) for r in rs]

    assert strip(tmp_path / "one") == strip(tmp_path / "four")  # same results, same order
