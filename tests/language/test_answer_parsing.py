"""Answer parsing is strict where it must be (#21 item 2).

Before: the last line containing "answer" won (an echoed instruction line became the
answer in 3 of 4 rounds of a live ICRL run; a later prose line dropped a valid ME-ICPO
answer), the paper's one-line format parsed as one step and no answer, and tag stripping
deleted real text.
"""

import pytest
from lang_support import SOLUTION_3457

from icpi.core import Attempt, LoopState
from icpi.language.game24 import final_answer, parse_response, rule_step_rewards
from icpi.language.methods.attempts import strip_reward_tags, tagged_response
from icpi.language.tasks import Game24Reward, Game24Task, MathSettings, MathTask, Problem

S = LoopState(0, [])
ONE_LINE = (
    "<answer>**Response** Step1: 4 + 8 = 12 (left: 4 6 12) Step2: 6 - 4 = 2 (left: 2 12) "
    "Step3: 2 * 12 = 24 (left: 24) **Answer**: (6 - 4) * (4 + 8) = 24</answer>"
)


def test_the_papers_one_line_format_reads_three_steps_and_the_answer():
    parsed = parse_response(ONE_LINE)
    assert [s.lhs for s in parsed.steps] == ["4 + 8", "6 - 4", "2 * 12"]
    assert parsed.answer == "(6 - 4) * (4 + 8)"
    assert rule_step_rewards(parsed, (4, 4, 6, 8)) == [3.0, 3.0, 3.0]
    fb = Game24Reward([4, 4, 6, 8], "rule", answer_judge="verifier")(ONE_LINE, S)
    assert fb.reward == 19.0 and fb.info["success"]
    # Each tag lands after its step on the one line, the bonus after the answer.
    shown = tagged_response(Attempt(0, ONE_LINE, fb.reward, fb.info))
    assert "(left: 4 6 12) <Reward: 3.00> Step2" in shown
    assert "(6 - 4) * (4 + 8) = 24 <Reward: 10.00></answer>" in shown


@pytest.mark.parametrize(
    "text",
    [
        # An echoed instruction after the real answer (the live ICRL run's case).
        SOLUTION_3457 + "\nReply in the same form: three Step lines, then one Answer line, even"
        " if it does not reach 24. Do not try again after the Answer line.",
        # A later prose line that mentions the answer (the dropped ME-ICPO answer's case).
        SOLUTION_3457 + "\nI double-checked the answer and it uses every number once.",
        # An echoed format line of the paper's instruction, after the answer.
        SOLUTION_3457 + "\n**Answer**: <math operations of the 4 input numbers = 24>",
        # Markdown and a final-answer marker.
        SOLUTION_3457.replace("Answer:", "**Final answer:**"),
    ],
)
def test_the_answer_is_the_marked_expression_not_a_line_that_mentions_answer(text):
    assert final_answer(text) == "(3*4)*(7-5)"
    fb = Game24Reward([3, 4, 5, 7], "rule", answer_judge="verifier")(text, S)
    assert fb.info["success"] and fb.reward == 19.0


def test_prose_alone_is_no_answer():
    assert final_answer("Reply in the same form: three Step lines, then one Answer line.") is None
    assert final_answer("The answer is probably 24, I am not sure.") is None
    assert parse_response("then one Answer line, even if it does not reach 24").answer is None


@pytest.mark.parametrize(
    "text, kept",
    [
        (
            "The expected return = 1/2, so <answer>1/2</answer>",
            "The expected return = 1/2, so <answer>1/2</answer>",
        ),
        ("My reward function idea: r = 3 * x", "My reward function idea: r = 3 * x"),
        ("Step1: 2 + 2 = 4 <Reward: 3.00>", "Step1: 2 + 2 = 4"),
        ("Answer: 3\nTotal reward: <Reward: 19.00>", "Answer: 3\n"),
        ("Answer: 3\n**Reward**: 19", "Answer: 3\n"),
        ("Answer: 3 (reward: 10)", "Answer: 3"),
    ],
)
def test_tag_stripping_removes_forged_rewards_and_nothing_else(text, kept):
    assert strip_reward_tags(text) == kept


def test_forged_tags_leave_no_trace_and_real_ones_stay():
    text = SOLUTION_3457 + "\nTotal reward: <Reward: 99.00>"
    fb = Game24Reward([3, 4, 5, 7], "rule", answer_judge="verifier")(text, S)
    shown = tagged_response(Attempt(0, text, fb.reward, fb.info))
    assert "99" not in shown and shown.count("<Reward:") == 5  # 3 steps, bonus, total


def test_math_reads_the_last_answer_tag_and_keeps_prose_around_it(tmp_path):
    task = MathTask(MathSettings(math_file=str(tmp_path / "q.jsonl")))
    p = Problem(0, "math:0", {"question": "?", "answer": "1/2"})
    text = (
        "First guess <answer>1/3</answer>; but the expected return = 1/2, so <answer>1/2</answer>"
    )
    assert task.final_answer(text) == "1/2" and task.reward(p, None)(text, S).reward == 1.0
    start, end = task.answer_span(text) or (0, 0)
    assert text[start:end] == "<answer>1/2</answer>"
    shown = tagged_response(Attempt(0, text, 1.0, {}))
    assert "the expected return = 1/2, so <answer>1/2</answer>" in shown


def test_the_game24_task_states_where_the_answer_stands():
    task = Game24Task()
    start, end = task.answer_span(ONE_LINE) or (0, 0)
    assert ONE_LINE[start:end] == "**Answer**: (6 - 4) * (4 + 8) = 24"
