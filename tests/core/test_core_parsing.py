import numpy as np
import pytest

from icpi.core.parsing import (
    ARITY,
    EMPTY,
    NO_ANSWER,
    NO_NUMBERS,
    NON_FINITE,
    OUT_OF_BOUNDS,
    TOO_LARGE,
    FailureCounter,
    NumericVectorParser,
    TextAnswerParser,
    normalise_answer,
)


@pytest.fixture
def parser():
    return NumericVectorParser(3, low=[-1, -2, -3], high=[1, 2, 3])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1 -0.2 0.3", [0.1, -0.2, 0.3]),
        (" 0.1, -0.2, 0.3\nnext line 9 9", [0.1, -0.2, 0.3]),
        ("[0.5, \u22121.5, .25]", [0.5, -1.5, 0.25]),
        ("dtheta = 1e-2 +0.5 -3.", [0.01, 0.5, -3.0]),
        ("\n\n  0 0 0  \n", [0.0, 0.0, 0.0]),
    ],
)
def test_numeric_parser_accepts(parser, text, expected):
    r = parser(text)
    assert r.ok, r
    np.testing.assert_allclose(r.value, expected)
    assert not r.clipped


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", EMPTY),
        ("   \n ", EMPTY),
        ("I think you should push harder.", NO_NUMBERS),
        ("0.1 0.2", ARITY),
        ("0.1 0.2 0.3 0.4", ARITY),
        ("nan 0 0", NON_FINITE),
        ("0 inf 0", NON_FINITE),
        ("-Infinity 0 0", NON_FINITE),
        ("1e300 0 0", TOO_LARGE),
        ("0 12345678901234567890 0", TOO_LARGE),
        ("1.2.3 4 5", ARITY),
    ],
)
def test_numeric_parser_rejects(parser, text, code):
    r = parser(text)
    assert not r.ok
    assert r.error == code
    assert r.value is None


def test_numeric_parser_clips_or_rejects_out_of_bounds():
    clip = NumericVectorParser(2, low=-1, high=1)
    r = clip("5 -0.5")
    assert r.ok and r.clipped
    np.testing.assert_allclose(r.value, [1.0, -0.5])
    strict = NumericVectorParser(2, low=-1, high=1, clip=False)
    assert strict("5 -0.5").error == OUT_OF_BOUNDS


def test_numeric_parser_any_line_skips_prose():
    p = NumericVectorParser(2, any_line=True)
    r = p("Sure! Step 1 is easy.\nAnswer: 0.3 -0.1")
    assert r.ok
    np.testing.assert_allclose(r.value, [0.3, -0.1])
    assert NumericVectorParser(2)("Step 1 is easy.\nAnswer: 0.3 -0.1").error == ARITY


def test_numeric_parser_never_evaluates_code():
    # Expressions are data: no arithmetic, no eval.
    r = NumericVectorParser(1)("__import__('os').system('true')")
    assert not r.ok
    r = NumericVectorParser(1)("2*3")
    assert r.error == ARITY


def test_text_answer_parser():
    p = TextAnswerParser(pattern=r"answer is (\S+)")
    assert p("reasoning <answer> 24 </answer>").value == "24"
    assert p("so \\boxed{\\frac{1}{2}} done").value == "\\frac{1}{2}"
    assert p("the answer is 12.0").value == "12"
    assert p("no idea").error == NO_ANSWER
    assert p("").error == EMPTY
    assert TextAnswerParser(fallback_last_line=True)("a\n  42 \n").value == "42"


def test_normalise_answer():
    assert normalise_answer(" $12.0$. ") == "12"
    assert normalise_answer("1,000") == "1000"
    assert normalise_answer("X  +  Y") == "x + y"
    assert normalise_answer("0.5") == "0.5"


def test_failure_counter():
    p = NumericVectorParser(1, low=0, high=1)
    c = FailureCounter()
    c.extend([p("0.5"), p("2"), p(""), p("a"), p("")])
    assert c.to_dict() == {
        "total": 5,
        "ok": 2,
        "clipped": 1,
        "failures": {"empty": 2, "no_numbers": 1},
    }
