"""Game of 24: reference solver, puzzle generator, safe evaluator and step checker."""

import itertools
from fractions import Fraction

import pytest

from icpi.language import game24
from icpi.language.game24 import (
    ExpressionError,
    Puzzle,
    check_answer,
    evaluate_expression,
    final_answer,
    generate_puzzles,
    is_solvable,
    parse_response,
    rule_step_rewards,
    solve,
)
from icpi.language.prompts import PACKAGE, PAPER

SOLVABLE = [(4, 4, 6, 8), (1, 4, 8, 8), (3, 3, 8, 8), (1, 5, 5, 5), (4, 9, 10, 13), (2, 3, 4, 6)]
UNSOLVABLE = [(1, 1, 1, 1), (1, 1, 1, 2), (13, 13, 13, 13), (1, 7, 7, 13), (5, 5, 5, 7)]


@pytest.mark.parametrize("numbers", SOLVABLE)
def test_solver_finds_a_checked_solution(numbers):
    sol = solve(numbers)
    assert sol is not None and is_solvable(numbers)
    assert check_answer(sol, numbers).ok  # the solver's answer passes the evaluator


@pytest.mark.parametrize("numbers", UNSOLVABLE)
def test_solver_knows_unsolvable_puzzles(numbers):
    assert solve(numbers) is None and not is_solvable(numbers)


def test_fractional_intermediates_are_exact():
    # 8 / (3 - 8 / 3) = 24 only in exact arithmetic.
    assert evaluate_expression("8 / (3 - 8 / 3)")[0] == Fraction(24)
    assert check_answer("8/(3-8/3)", (3, 3, 8, 8)).ok
    assert check_answer("5 * (5 - 1 / 5)", (1, 5, 5, 5)).ok


@pytest.mark.slow
def test_solver_counts_1362_solvable_puzzles_of_1820():
    combos = list(itertools.combinations_with_replacement(range(1, 14), 4))
    assert len(combos) == 1820
    assert sum(is_solvable(c) for c in combos) == 1362  # the well-known count


def test_generator_is_seeded_and_classified():
    a = generate_puzzles(10, seed=3)
    assert a == generate_puzzles(10, seed=3) and a != generate_puzzles(10, seed=4)
    assert len({p.numbers for p in a}) == 10
    assert all(p.solvable and check_answer(p.solution, p.numbers).ok for p in a)
    assert all(1 <= x <= 13 and list(p.numbers) == sorted(p.numbers) for p in a for x in p.numbers)
    bad = generate_puzzles(5, seed=3, solvable=False)
    assert all(not p.solvable and p.solution is None and not is_solvable(p.numbers) for p in bad)
    mixed = generate_puzzles(30, seed=1, solvable=None)
    assert {p.solvable for p in mixed} == {True, False}
    excluded = generate_puzzles(50, seed=0, exclude=[(6, 4, 3, 2)])
    assert (2, 3, 4, 6) not in {p.numbers for p in excluded}
    with pytest.raises(ValueError):
        Puzzle.of([1, 2, 3])


@pytest.mark.parametrize(
    "expr, value",
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("12 / 4 - 1", 2),
        ("2 × 3 ÷ 6", 1),
        ("10 − 4", 6),  # unicode minus
        ("[2 + 2] * {3 + 3}", 24),
        (r"4 \times 6", 24),
        ("1 - 2 - 3", -4),  # left-associative
        ("8 / 4 / 2", 1),
    ],
)
def test_evaluator_values(expr, value):
    assert evaluate_expression(expr)[0] == Fraction(value)


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "   ",
        "2 ** 3",
        "(1 + 2",
        "1 + 2)",
        ")(",
        "1 +",
        "* 3",
        "1 / 0",
        "4 / (2 - 2)",
        "-3 + 27",  # no unary minus: it would add a number
        "+3",
        "1.5 * 16",
        "__import__('os').system('true')",
        "open('x')",
        "2 3",
        "24 = 24",
        "1e3",
        "(" * 30 + "1" + ")" * 30,
        "1+" * 200 + "1",
    ],
)
def test_evaluator_rejects_malformed_expressions(expr):
    with pytest.raises(ExpressionError):
        evaluate_expression(expr)


def test_check_answer_verdicts():
    nums = (4, 4, 6, 8)
    assert check_answer("(6 - 4) * (4 + 8)", nums).ok
    assert check_answer("(4 + 8) * (6 - 4)", list(nums)).ok
    wrong_value = check_answer("4 + 4 + 6 + 8", nums)
    assert not wrong_value.ok and wrong_value.numbers_ok and wrong_value.value == 22
    reused = check_answer("(6 - 4) * (8 + 8)", nums)
    assert not reused.ok and not reused.numbers_ok
    missing = check_answer("6 * 4", nums)
    assert not missing.ok and "uses" in (missing.error or "")
    assert check_answer("4 * 6 * (8 - 4) / 4", nums).ok is False  # five numbers
    assert check_answer(None, nums).error == "no answer"
    assert check_answer("(6 - 4 * (4 + 8)", nums).error.startswith("malformed")


@pytest.mark.parametrize("prompts", [PACKAGE, PAPER], ids=["package", "paper"])
def test_prompt_demonstrations_are_right(prompts):
    # Every worked example of the task text is a right solution with three sure steps.
    text = prompts.game24_task.format(numbers="1 2 3 4")
    blocks = text.split("Input: ")[1:-1]  # the last one is the puzzle asked
    assert [tuple(map(int, b.split("\n")[0].split())) for b in blocks] == [
        tuple(d) for d in prompts.game24_demos
    ]
    for block, numbers in zip(blocks, prompts.game24_demos, strict=True):
        parsed = parse_response(block)
        assert check_answer(parsed.answer, numbers).ok
        assert rule_step_rewards(parsed, numbers) == [game24.SURE] * 3


GOOD = """Step1: 4 + 8 = 12 (left: 4 6 12)
Step2: 6 - 4 = 2 (left: 2 12)
Step3: 2 * 12 = 24 (left: 24)
**Answer**: (6 - 4) * (4 + 8) = 24"""


def test_parse_response_and_rule_rewards_of_a_solution():
    parsed = parse_response(GOOD)
    assert [s.lhs for s in parsed.steps] == ["4 + 8", "6 - 4", "2 * 12"]
    assert parsed.answer == "(6 - 4) * (4 + 8)"
    assert parsed.answer_span is not None
    assert (
        GOOD[parsed.answer_span[0] : parsed.answer_span[1]] == "**Answer**: (6 - 4) * (4 + 8) = 24"
    )
    assert rule_step_rewards(parsed, (4, 4, 6, 8)) == [3.0, 3.0, 3.0]
    assert final_answer(GOOD) == "(6-4)*(4+8)"
    tagged = "<answer>" + GOOD.replace("**Answer**:", "Answer:") + "</answer>"
    assert final_answer(tagged) == "(6-4)*(4+8)"


def test_rule_rewards_sure_and_impossible():
    nums = (4, 4, 6, 8)
    # 4 * 4 leaves 6 8 16, from which 24 cannot be reached: impossible from then on.
    assert not is_solvable([6, 8, 16]) and is_solvable([2, 4, 4])
    dead = "Step1: 4 * 4 = 16 (left: 6 8 16)\nStep2: 16 + 8 = 24 (left: 6 24)"
    assert rule_step_rewards(parse_response(dead), nums) == [game24.IMPOSSIBLE] * 2
    alive = "Step1: 8 - 6 = 2 (left: 2 4 4)"
    assert rule_step_rewards(parse_response(alive), nums) == [game24.SURE]
    wrong_arith = "Step1: 4 + 8 = 13 (left: 4 6 13)"
    assert rule_step_rewards(parse_response(wrong_arith), nums) == [game24.IMPOSSIBLE]
    # (An invented left list or a foreign operand: see test_issue10_bugs.)
    assert rule_step_rewards(parse_response("no steps here"), nums) == []


def test_parse_response_tolerates_junk():
    parsed = parse_response("I'm sorry, I cannot help.\nThe answer is unknown")
    assert parsed.steps == []
    assert check_answer(parsed.answer, (1, 2, 3, 4)).ok is False
    assert final_answer("") is None
    assert final_answer("Answer: will do it") is None and final_answer("Answer: (3 * ") is None
    assert final_answer("Answer: 1 + 2 = 3") == "1+2"  # wrong, but an answer
