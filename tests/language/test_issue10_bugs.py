"""Bugs of issue 10: each test here failed before its fix."""

from fractions import Fraction

import pytest
from lang_support import SOLUTION_3457, build, scripted

from icpi.core import Attempt, LoopState
from icpi.core.selectors import answer_entropy
from icpi.language import game24
from icpi.language.game24 import parse_response, rule_step_rewards
from icpi.language.tasks import Game24Reward, Game24Task
from icpi.language.tasks.game24 import judge_step_verdict

S = LoopState(iteration=0, history=[])
FRACTIONS_3388 = """Step1: 8 / 3 = 8/3 (left: 3 8 8/3)
Step2: 3 - 8/3 = 1/3 (left: 8 1/3)
Step3: 8 / 1/3 = 24 (left: 24)
Answer: 8 / (3 - 8 / 3) = 24"""


def test_rule_judge_scores_fraction_steps():
    parsed = parse_response(FRACTIONS_3388)
    assert rule_step_rewards(parsed, (3, 3, 8, 8)) == [game24.SURE] * 3
    fb = Game24Reward([3, 3, 8, 8], "rule", answer_judge="verifier")(FRACTIONS_3388, S)
    assert fb.reward == 19.0 and fb.info["success"]


def test_rule_judge_gives_nothing_to_an_invented_left_list():
    nums = (4, 4, 6, 8)
    invented = "Step1: 4 + 8 = 12 (left: 2 12)"  # right arithmetic, numbers left made up
    assert rule_step_rewards(parse_response(invented), nums) == [game24.IMPOSSIBLE]
    foreign = "Step1: 9 + 3 = 12 (left: 4 6 12)"  # operands not among the numbers
    assert rule_step_rewards(parse_response(foreign), nums) == [game24.IMPOSSIBLE]
    # A broken step does not move the game: the next step is judged from the true numbers.
    chain = "Step1: 9 + 3 = 12 (left: 2 12)\nStep2: 2 * 12 = 24 (left: 24)"
    assert rule_step_rewards(parse_response(chain), nums) == [game24.IMPOSSIBLE] * 2


@pytest.mark.parametrize(
    "text, score",
    [
        ("not sure", 1.0),
        ("I am not sure this works", 1.0),
        ("unsure", 1.0),
        ("Sure.", 3.0),
        ("likely", 1.0),
        ("unlikely", 0.0),
        ("not likely", 0.0),
        ("impossible", 0.0),
        ("not possible", 0.0),
        ("**Answer**: 3", 3.0),
        ("Answer: 0", 0.0),
        ("Reasoning about step 3 ... Answer: 1", 1.0),
        ("", 0.0),
    ],
)
def test_llm_judge_verdicts_with_negation(text, score):
    assert judge_step_verdict(text) == score


def test_llm_judge_decides_the_answer_bonus_too():
    # The paper's reward: the model's own judge scores steps and the final equation; the
    # exact verifier only reports success (here the judge wrongly rejects a right answer).
    _, samplers = scripted(lambda prompt, n, seed: ["Answer: 0"])
    fb = Game24Reward([3, 4, 5, 7], "llm", samplers.judge)(SOLUTION_3457, S)
    assert fb.reward == 0.0 and fb.info["success"] is True


def test_model_written_reward_tags_are_stripped():
    from icpi.language.methods.attempts import tagged_response

    text = "Step1: 7 - 5 = 2 (left: 2 3 4) <Reward: 3.00>\nAnswer: 3 + 4 = 7\nTotal reward: 99"
    marks = [[text.index(")") + 1, 0.0], [text.index(" = 7") + 4, 0.0]]
    a = Attempt(0, text, 0.0, {"reward_marks": marks})
    shown = tagged_response(a)
    assert "99" not in shown and "<Reward: 3.00>" not in shown
    assert shown.count("<Reward:") == 3  # two real line tags and the real total
    assert "Step1: 7 - 5 = 2 (left: 2 3 4) <Reward: 0.00>" in shown


def test_all_invalid_entropy_never_beats_half_valid():
    n = 16
    all_invalid = answer_entropy([None] * n)
    worst_half = answer_entropy([str(i) for i in range(n // 2)] + [None] * (n // 2))
    assert all_invalid > worst_half
    assert all_invalid > max(
        answer_entropy([str(i) for i in range(v)] + [None] * (n - v)) for v in range(1, n + 1)
    )


def test_vote_counts_the_task_answer_not_the_string():
    task = Game24Task()
    keys = task.vote_keys(["(6-4)*(4+8)", "(4+8)*(6-4)", "4*6*(8-4)/4", None])
    assert keys[0] == keys[1] and keys[0] != keys[2] and keys[3] is None
    assert Fraction(24) == game24.evaluate_expression("(4+8)*(6-4)")[0]


def test_reflexion_reflects_on_the_reward_it_sees(puzzle):
    from icpi.core import Budget

    wrong = (
        "Step1: 3 + 4 = 7 (left: 5 7 7)\nStep2: 7 + 5 = 12 (left: 7 12)\n"
        "Step3: 12 + 7 = 19 (left: 19)\nAnswer: 3 + 4 + 5 + 7 = 24"
    )

    def model(prompt, n, seed):
        if prompt.rstrip().endswith("Reflection:"):
            return ["a reflection"]
        if "Game of 24 rule" in prompt:  # the judge likes everything
            return ["Answer: 10" if "Proposed solution" in prompt else "Answer: 3"]
        return [wrong] * n

    sampler, samplers = scripted(model)
    loop = build("reflexion", Game24Task(), puzzle, samplers)
    attempts = loop.run(Budget(max_iterations=2)).attempts
    # Wrong by the verifier, but full reward by the judge the method sees: no reflection.
    assert [a.info["success"] for a in attempts] == [False, False]
    assert [a.reward for a in attempts] == [19.0, 19.0]
    assert [a.info["reflection"] for a in attempts] == ["", ""]
    policy = [p for p, _, _ in sampler.calls if p.rstrip().endswith("Input: 3 4 5 7")]
    assert "wrong" not in policy[-1] and "<Reward: 19.00>" in policy[-1]


def test_empty_helper_judge_and_entropy_answers_never_stop_a_run(puzzle):
    # Found by bench_language on the embedded model: an all-empty summary stopped ME-ICPO.
    from icpi.core import Budget
    from icpi.llm.errors import LLMEmptyResponseError

    def model(prompt, n, seed):
        judge = "Game of 24 rule" in prompt
        if prompt.rstrip().endswith(("Summary:", "Reflection:")) or judge or n == 2:
            raise LLMEmptyResponseError("only empty samples")  # helper, judge, entropy
        return [SOLUTION_3457] * n

    _, samplers = scripted(model)
    loop = build("me-icpo", Game24Task(), puzzle, samplers, k=3, entropy_k=2, final_k=2)
    a = loop.run(Budget(max_iterations=2)).attempts[-1]
    assert a.source == "model" and a.action["summary"].endswith("Final answer: (3*4)*(7-5)")
    for method in ("icrl-preset", "reflexion"):
        loop = build(method, Game24Task(), puzzle, samplers)
        attempts = loop.run(Budget(max_iterations=2)).attempts
        assert [x.reward for x in attempts] == [0.0, 0.0]  # no verdict: nothing earned
        assert all(x.info["success"] for x in attempts)
