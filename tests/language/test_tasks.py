"""Tasks: Game of 24 rewards (rule and LLM judge), writing judge, math exact match."""

import json

import pytest
from lang_support import SOLUTION_3457, WRONG_3457, scripted

from icpi.core import LoopState
from icpi.errors import ConfigError
from icpi.language.prompts import PACKAGE
from icpi.language.tasks import (
    Game24Reward,
    Game24Settings,
    Game24Task,
    MathSettings,
    MathTask,
    WritingSettings,
    WritingTask,
    load_math_problems,
    make_task,
)
from icpi.language.tasks.game24 import judge_step_verdict

S = LoopState(iteration=0, history=[])


def test_game24_reward_rule_based():
    fb = Game24Reward([3, 4, 5, 7], "rule", answer_judge="verifier")(SOLUTION_3457, S)
    assert fb.reward == 19.0 and fb.info["success"] and fb.info["step_rewards"] == [3.0] * 3
    ends = [SOLUTION_3457.index(")", SOLUTION_3457.index(f"Step{i}")) + 1 for i in (1, 2, 3)]
    assert fb.info["reward_marks"] == [[e, 3.0] for e in ends] + [[len(SOLUTION_3457), 10.0]]
    bad = Game24Reward([3, 4, 5, 7], "rule", answer_judge="verifier")(WRONG_3457, S)
    assert bad.reward == 0.0 and not bad.info["success"] and "equals 19" in bad.info["answer_error"]
    empty = Game24Reward([3, 4, 5, 7], "rule", answer_judge="verifier")("", S)
    assert empty.reward == 0.0 and empty.info["answer"] is None


def test_game24_reward_llm_judge():
    verdicts = iter(["Sure.", "likely", "it is impossible", "Answer: 10"])
    sampler, samplers = scripted(lambda prompt, n, seed: [next(verdicts)])
    fb = Game24Reward([3, 4, 5, 7], "llm", samplers.judge)(SOLUTION_3457, S)
    assert fb.info["step_rewards"] == [3.0, 1.0, 0.0] and fb.reward == 14.0
    assert fb.info["answer_reward"] == 10.0 and len(sampler.calls) == 4
    assert "Numbers left after it: 2 3 4" in sampler.calls[0][0]
    assert "Proposed solution: (3 * 4) * (7 - 5)" in sampler.calls[3][0]
    with pytest.raises(ValueError):
        Game24Reward([3, 4, 5, 7], "llm", None)


@pytest.mark.parametrize(
    "text, score",
    [("sure", 3.0), ("Likely, yes", 1.0), ("IMPOSSIBLE", 0.0), ("3", 3.0), ("hmm", 0.0)],
)
def test_step_verdicts(text, score):
    assert judge_step_verdict(text) == score


def test_game24_problems_avoid_prompt_examples():
    task = Game24Task(Game24Settings(split="random"))
    probs = task.problems(0, 0, 200)
    shown = {tuple(d) for d in PACKAGE.game24_demos}
    assert not shown & {tuple(p.data["numbers"]) for p in probs}
    assert all(p.data["solvable"] for p in probs)
    assert task.describe(probs[0]).endswith(
        "Input: " + " ".join(map(str, probs[0].data["numbers"]))
    )
    assert Game24Task().is_correct(probs[0], probs[0].data["solution"])


def test_writing_judge_reward():
    sampler, samplers = scripted(["Coherence score: 8"])
    task = WritingTask(WritingSettings(threshold=7))
    p = task.problems(1, 0, 2)[0]
    assert len(set(p.data["sentences"])) == 4
    text = task.describe(p)
    assert all(s in text for s in p.data["sentences"])
    reward = task.reward(p, samplers.judge)
    fb = reward("Plan: ...\nPassage: ...", LoopState(0, [], dict(p.data)))
    assert fb.reward == 8.0 and fb.info["success"] is True
    assert "Passage: ..." in sampler.calls[0][0] and "harbour" in sampler.calls[0][0]
    assert task.final_answer("anything") is None and not task.has_answers


def test_math_jsonl_exact_match(tmp_path):
    f = tmp_path / "q.jsonl"
    rows = [
        {"question": "What is 6 * 7?", "answer": "42"},
        {"question": "1/2 + 1/2?", "answer": "1"},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    task = make_task("math", MathSettings(math_file=str(f)))
    probs = task.problems(0, 0, 5)
    assert [p.data["answer"] for p in probs] == ["42", "1"]
    r = task.reward(probs[0], None)
    assert r("so <answer> 42 </answer>", S).reward == 1.0
    assert r("<answer>42.0</answer>", S).info["success"] is True
    assert r("<answer>41</answer>", S).reward == 0.0
    assert r("42", S).reward == 0.0  # no tagged answer
    assert task.final_answer("\\boxed{1}") == "1" and task.is_correct(probs[1], "1")
    assert "What is 6 * 7?" in task.describe(probs[0])


def test_math_file_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(ValueError, match="answer"):
        load_math_problems(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="not JSON"):
        load_math_problems(bad)
    with pytest.raises(ConfigError, match="math-file"):
        make_task("math")
    with pytest.raises(ConfigError):
        make_task("chess")
    assert isinstance(make_task("game24"), Game24Task)
    assert isinstance(MathTask(MathSettings(math_file="x")), MathTask)
