"""What users of the peers expect (#21 item 6): ranges, seeds, extra request fields, fixed
demonstrations, a time estimate, one summary answer, no unused judge calls, quiet resumes."""

import json
import logging

import pytest
from lang_support import EXACT, SOLUTION_3457, exact24, scripted

from icpi.cli.main import main
from icpi.core import Budget, ScriptedSampler
from icpi.language import game24
from icpi.language.config import lang_config
from icpi.language.methods import LangContext
from icpi.language.methods.me_icpo import MeIcpo, MeIcpoSettings, with_final_answer
from icpi.language.runner import problem_seed, run_language
from icpi.language.tasks import Game24Task
from icpi.llm import LLMConfig
from icpi.llm.testing import Reply, completion_body


def records(path):
    return [json.loads(x) for x in (path / "records.jsonl").open()]


def serve(fake, delay_s=0.0):
    def respond(path, body):
        if path.endswith("/models"):
            return Reply(body={"object": "list", "data": [{"id": "fake"}]})
        judge = "Game of 24 rule" in body["prompt"]
        return Reply(body=completion_body("Answer: 3" if judge else SOLUTION_3457), delay_s=delay_s)

    fake.responder = respond


def http_llm(fake, tmp_path):
    return LLMConfig(base_url=fake.base_url, model="fake", cache_path=tmp_path / "c.db")


# --------------------------------------------------------------------------- ranges, seeds
def test_start_and_end_index_the_ranking_as_tree_of_thoughts_does(tmp_path):
    ranking = game24.standard_ranking()
    sampler = ScriptedSampler(["x"])
    cfg = lang_config(split="all", start=900, end=903, rounds=1, **EXACT)
    run_language(cfg, tmp_path / "a", sampler=sampler)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    want = ["24:" + " ".join(map(str, ranking[i])) for i in (900, 901, 902)]
    assert config["problems"] == want  # ToT's --task_start_index 900 --task_end_index 903
    # The default split is the same range: tot-test starts at position 900.
    run_language(lang_config(problems=3, rounds=1, **EXACT), tmp_path / "b", sampler=sampler)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["problems"] == want
    # --start inside the test split, and --end without --problems runs the whole range.
    cfg = lang_config(start=998, end=1000, rounds=1, **EXACT)
    run_language(cfg, tmp_path / "c", sampler=sampler)
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["problems"] == ["24:" + " ".join(map(str, ranking[i])) for i in (998, 999)]
    from icpi.errors import ConfigError

    with pytest.raises(ConfigError, match="outside the tot-test split"):
        run_language(lang_config(start=10, rounds=1, **EXACT), tmp_path / "d", sampler=sampler)


def test_the_seed_seeds_the_calls_and_only_random_splits_draw_problems(tmp_path):
    seeds = {}
    for seed in (0, 1):
        sampler = ScriptedSampler(["x"])
        cfg = lang_config(problems=2, rounds=1, seed=seed, **EXACT)
        run_language(cfg, tmp_path / f"s{seed}", sampler=sampler)
        seeds[seed] = [s for _, _, s in sampler.calls]
        problems = json.loads((tmp_path / f"s{seed}" / "config.json").read_text())["problems"]
        assert problems == ["24:4 5 6 10", "24:1 2 4 7"]  # the ranked split: in order
    assert seeds[0] != seeds[1] and problem_seed(0, 0) != problem_seed(1, 0)
    drawn = [
        Game24Task(exact24().settings.__class__(split="random", **EXACT)).problems(s, 0, 3)
        for s in (0, 1)
    ]
    assert [p.id for p in drawn[0]] != [p.id for p in drawn[1]]


# --------------------------------------------------------------------------- extra body
def test_extra_request_fields_reach_every_call_and_are_recorded(fake, tmp_path, capsys):
    serve(fake)
    extra = '{"chat_template_kwargs": {"enable_thinking": false}, "top_k": 20}'
    argv = [
        "lang", "--base-url", fake.base_url, "--model", "fake", "--problems", "1",
        "--rounds", "1", "--split", "random", "--extra-body", extra,
        "--cache", str(tmp_path / "c.db"), "--out", str(tmp_path / "r"),
    ]  # fmt: skip
    assert main(argv) == 0
    bodies = [r["body"] for r in fake.requests if r["body"]]
    assert len(bodies) == 5  # the response and four judge calls
    assert all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in bodies)
    assert all(b["top_k"] == 20 for b in bodies)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["run"]["extra_body"] == json.loads(extra)
    for bad in ("{not json", "[1, 2]"):
        with pytest.raises(SystemExit) as exit_:
            main([*argv[:-2], "--extra-body", bad, "--out", str(tmp_path / "x")])
        assert exit_.value.code == 2 and "--extra-body" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- time estimate
def test_a_time_estimate_is_logged_once_the_first_round_is_timed(fake, tmp_path, caplog):
    serve(fake, delay_s=0.05)
    cfg = lang_config(problems=2, rounds=3, split="random", **EXACT)
    with caplog.at_level(logging.INFO, logger="icpi.core.estimate"):
        run_language(cfg, tmp_path / "r", llm=http_llm(fake, tmp_path))
    notes = [r.getMessage() for r in caplog.records if r.name == "icpi.core.estimate"]
    assert len(notes) == 1 and "5 rounds ×" in notes[0] and "(measured)" in notes[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="icpi.core.estimate"):
        run_language(cfg, tmp_path / "r", llm=http_llm(fake, tmp_path))  # nothing left
    assert not [r for r in caplog.records if r.name == "icpi.core.estimate"]


# --------------------------------------------------------------------------- ME-ICPO summaries
@pytest.mark.parametrize(
    "summary, kept",
    [
        ("Pair 3*4 and 7-5. Final answer: (3 * 4) * (7 - 5) = 24", True),
        ("Pair 3*4 and 7-5. Final answer: (3*4)*(7-5).", True),
        ("Pair them. Final answer: 3 + 4 + 5 + 7", False),
        ("Pair 3*4 and 7-5.", False),
    ],
)
def test_a_summary_states_the_final_answer_once(summary, kept):
    out = with_final_answer(summary, "(3*4)*(7-5)", exact24())
    assert out.lower().count("final answer") == 1
    assert (out == summary) is kept
    assert out.endswith(("(3 * 4) * (7 - 5) = 24", "(3*4)*(7-5).", "(3*4)*(7-5)"))


def test_me_icpo_memory_holds_one_final_answer_per_idea(puzzle):
    def model(prompt, n, seed):
        if prompt.rstrip().endswith("Summary:"):
            return ["Multiply 3 by 4, then by 7 - 5. Final answer: (3 * 4) * (7 - 5) = 24"]
        return [SOLUTION_3457] * n

    _, samplers = scripted(model)
    method = MeIcpo(LangContext(exact24(), samplers), MeIcpoSettings(k=2, entropy_k=2))
    loop, _ = method.build(puzzle)
    attempt = loop.run(Budget(max_iterations=1)).attempts[0]
    assert attempt.action["summary"].lower().count("final answer") == 1


# --------------------------------------------------------------------------- judge calls
@pytest.mark.parametrize("method", ["best-of-n", "cot-only", "long-cot", "self-refine"])
def test_methods_that_use_no_reward_ask_no_judge(fake, tmp_path, method):
    serve(fake)
    cfg = lang_config(method=method, problems=1, rounds=2, split="random", helper_tokens=20)
    summary = run_language(cfg, tmp_path / "r", llm=http_llm(fake, tmp_path))
    bodies = [r["body"] for r in fake.requests if r["body"]]
    assert not [b for b in bodies if "Game of 24 rule" in b["prompt"]]  # no judge call
    assert summary["final_success"] == 0.0  # SOLUTION_3457 solves another puzzle
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["reward_seen"].startswith("none: the method uses no reward")
    by_role = [r["usage"]["by_role"] for r in records(tmp_path / "r")]
    assert all("judge" not in roles for roles in by_role)


def test_icrl_still_asks_its_judge(fake, tmp_path):
    serve(fake)
    cfg = lang_config(method="icrl-preset", problems=1, rounds=1, split="random")
    run_language(cfg, tmp_path / "r", llm=http_llm(fake, tmp_path))
    bodies = [r["body"] for r in fake.requests if r["body"]]
    assert len([b for b in bodies if "Game of 24 rule" in b["prompt"]]) == 4


# --------------------------------------------------------------------------- quiet resume
def test_a_resume_says_so_once_per_problem(tmp_path, caplog):
    cfg = lang_config(problems=2, rounds=2, split="random", **EXACT)
    run_language(cfg, tmp_path / "r", sampler=ScriptedSampler(["x"]))
    more = lang_config(problems=2, rounds=6, split="random", **EXACT)
    with caplog.at_level(logging.INFO):
        run_language(more, tmp_path / "r", sampler=ScriptedSampler(["x"]))
    resumes = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(resumes) == 2 and all(
        m.endswith("resuming after 2 finished attempts") for m in resumes
    )
    assert not [r for r in caplog.records if "resuming at iteration" in r.getMessage()]
