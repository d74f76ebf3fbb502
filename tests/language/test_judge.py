"""The judge reasons first and its verdict is read right (#21 item 3).

Before: the judge got 16 tokens and was asked to reply at once (the paper's Figure 12
asks it to reason first; the authors' code gives it 1024 tokens at temperature 0), and
``" 0\\nThe answer is 3"`` read as 3 while ``"Score: 3"`` read as 0.
"""

import json

import pytest
from lang_support import SOLUTION_3457

from icpi.core import LoopState, ScriptedSampler
from icpi.language.config import lang_config
from icpi.language.prompts import PACKAGE, PAPER
from icpi.language.runner import run_language
from icpi.language.tasks import Game24Reward, Problem, WritingSettings, WritingTask, read_verdict
from icpi.language.tasks.game24 import judge_answer_verdict, judge_step_verdict
from icpi.llm import LLMConfig
from icpi.llm.testing import FakeOpenAI, Reply, completion_body

S = LoopState(0, [])


@pytest.mark.parametrize(
    "text, prompt, score",
    [
        (" 0\nThe answer is 3", "... Reply in this form: Answer: <score>\nAnswer:", 0.0),
        ("Score: 3", "", 3.0),
        ("3 * 8 = 24, and 2 + 12 = 14 ... so it can work.\n**Answer**: 1", "Reasoning:", 1.0),
        ("The numbers 2 and 12 give 24 by 2 * 12.\nAnswer: 3", "Response:", 3.0),
        ("Answer: 0\nOn second thought:\nAnswer: 3", "", 3.0),  # the last verdict line
        ("After checking, the answer is 1.", "Reasoning:", 1.0),
        ("12 and 2 are left; impossible.", "Reasoning:", 0.0),  # a number is no verdict
        ("3", "Reasoning:", 3.0),
    ],
)
def test_step_verdicts(text, prompt, score):
    assert judge_step_verdict(text, prompt) == score


def test_answer_and_coherence_verdicts():
    assert judge_answer_verdict("It uses 4, 4, 6, 8 once and equals 24.\nAnswer: 10")
    assert not judge_answer_verdict(
        "It uses 9, not an input number (10 would be wrong).\nAnswer: 0"
    )
    assert read_verdict("Paragraph 2 is weak (3 ideas at once).\nCoherence score: 8") == 8.0
    assert read_verdict("Coherency score: 7.") == 7.0  # the paper's Figure 11 spelling
    assert read_verdict("no verdict here") is None


def test_a_reasoning_judge_scores_through_both_prompt_sets():
    def judge(prompt, n, seed):
        if "Proposed solution" in prompt:
            return ["Each number once, 12 * 2 = 24.\n**Answer**: 10"]
        return ["The numbers left can reach 24 (e.g. 12 * 2 = 24).\n**Answer**: 3"]

    for prompts in (PACKAGE, PAPER):
        sampler = ScriptedSampler(judge)
        reward = Game24Reward([3, 4, 5, 7], "llm", sampler, step_prompt=prompts.step_judge)
        fb = reward(SOLUTION_3457, S)
        asked = [c[0] for c in sampler.calls]
        assert fb.reward == 19.0 and len(fb.info["judge_answers"]) == 4
        assert "7 - 5 = 2 (left: 2 3 4)" in asked[0]
        assert "reason" in asked[0].lower()  # the judge is asked to reason first
        assert not asked[0].rstrip().endswith("Answer:")


def test_the_writing_judge_reads_the_last_score_not_the_first_number():
    judge = ScriptedSampler(["The 4 paragraphs flow; 1 sentence is abrupt.\nCoherence score: 8"])
    task = WritingTask(WritingSettings(threshold=7))
    p = task.problems(0, 0, 1)[0]
    fb = task.reward(p, judge)("Plan: x\nPassage: y", S)
    assert fb.reward == 8.0 and fb.info["success"] and fb.info["judge_ok"]


def test_the_judge_gets_1024_tokens_at_temperature_0_by_default(tmp_path):
    fake = FakeOpenAI()
    try:

        def respond(path, body):
            if path.endswith("/models"):
                return Reply(body={"object": "list", "data": [{"id": "fake"}]})
            if "Game of 24 rule" in body["prompt"]:
                return Reply(body=completion_body("Reasoning ... \nAnswer: 3"))
            return Reply(body=completion_body(SOLUTION_3457))

        fake.responder = respond
        llm = LLMConfig(base_url=fake.base_url, model="fake", cache_path=tmp_path / "c.db")
        cfg = lang_config(problems=1, rounds=1, split="random", max_tokens=200)
        run_language(cfg, tmp_path / "r", llm=llm)
        bodies = [r["body"] for r in fake.requests if r["body"]]
        judge = [b for b in bodies if "Game of 24 rule" in b["prompt"]]
        policy = [b for b in bodies if "Game of 24 rule" not in b["prompt"]]
        assert len(judge) == 4 and len(policy) == 1
        assert {(b["max_tokens"], b["temperature"]) for b in judge} == {(1024, 0.0)}
        assert (policy[0]["max_tokens"], policy[0]["temperature"]) == (200, 0.6)
        config = json.loads((tmp_path / "r" / "config.json").read_text())
        assert config["run"]["judge_tokens"] == 1024
    finally:
        fake.close()


def test_the_judge_is_shown_the_step_as_written():
    p = Problem(0, "24:3 4 5 7", {"numbers": [3, 4, 5, 7]})
    judge = ScriptedSampler(["Answer: 3"])
    Game24Reward(p.data["numbers"], "llm", judge, step_prompt=PAPER.step_judge)(SOLUTION_3457, S)
    first = judge.calls[0][0]
    assert "the current step is: 7 - 5 = 2 (left: 2 3 4). Evaluate this step." in first
