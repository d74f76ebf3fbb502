import math

import numpy as np
import pytest

from icpi.core.parsing import NumericVectorParser, TextAnswerParser
from icpi.core.records import Feedback, LoopState
from icpi.core.rewards import CallableReward, LLMJudgeReward, VerifierReward
from icpi.core.samplers import ScriptedSampler
from icpi.core.selectors import (
    FirstValid,
    MajorityVote,
    MinimumEntropy,
    NumericConsensus,
    answer_entropy,
)

S = LoopState(0, [])
vec = NumericVectorParser(2)
ans = TextAnswerParser()


def test_first_valid():
    sel = FirstValid().select([vec("junk"), vec("1 2"), vec("3 4")], S)
    assert sel.index == 1
    np.testing.assert_allclose(sel.value, [1, 2])
    assert FirstValid().select([vec(""), vec("x")], S).index is None


def test_majority_vote_ties_go_first_seen():
    results = [ans(f"<answer>{a}</answer>") for a in ["3", "4", "4", "3", "5"]] + [ans("?")]
    sel = MajorityVote().select(results, S)
    assert sel.index == 0 and sel.value == "3"
    assert sel.info["votes"] == {"3": 2, "4": 2, "5": 1}
    assert sel.info["agreement"] == pytest.approx(2 / 6)
    assert MajorityVote().select([ans("?")], S).index is None


def test_majority_vote_on_vectors():
    sel = MajorityVote().select([vec("1 2"), vec("0 0"), vec("1.0 2.0")], S)
    assert sel.index == 0


def test_answer_entropy():
    assert answer_entropy(["a"] * 4) == 0.0
    assert answer_entropy(["a", "b", "a", "b"]) == pytest.approx(1.0)
    # two invalid of four: 0 bits among valid + log2(4) * 0.5
    assert answer_entropy(["a", "a", None, None]) == pytest.approx(1.0)
    # no valid answer: 5 × log2(n), above any set with one (ME-ICPO's code)
    assert answer_entropy([None, None]) == pytest.approx(5.0)
    assert answer_entropy([]) == 0.0


def test_minimum_entropy():
    results = [ans("<answer>1</answer>"), ans("?"), ans("<answer>2</answer>")]
    scores = {"1": 0.9, "2": 0.1}
    sel = MinimumEntropy(lambda r, s: scores[r.value]).select(results, S)
    assert sel.index == 2
    assert sel.info["scores"] == [0.9, None, 0.1]
    assert MinimumEntropy(lambda r, s: math.nan).select(results, S).index is None


@pytest.mark.parametrize(
    ("method", "value", "index"),
    [("median", [1.0, 2.0], 1), ("mean", [101 / 3, 2.0], 1), ("medoid", [1.0, 2.0], 1)],
)
def test_numeric_consensus(method, value, index):
    results = [vec("0 2"), vec("1 2"), vec("100 2"), vec("junk")]
    sel = NumericConsensus(method).select(results, S)
    np.testing.assert_allclose(sel.value, value)
    assert sel.index == index
    assert sel.info["n_valid"] == 3


def test_numeric_consensus_none_valid():
    assert NumericConsensus().select([vec("")], S).index is None
    with pytest.raises(ValueError):
        NumericConsensus("mode")  # type: ignore[arg-type]


def test_callable_reward_forms():
    assert CallableReward(lambda a: 2).__call__(None, S) == Feedback(2.0)
    assert CallableReward(lambda a: (1.5, {"cost": 3}))(None, S) == Feedback(1.5, {"cost": 3})
    fb = Feedback(0.0, {"x": 1})
    assert CallableReward(lambda a: fb)(None, S) is fb
    with pytest.raises(TypeError):
        CallableReward(lambda a: "bad")(None, S)  # type: ignore[arg-type,return-value]


def test_verifier_reward():
    v = VerifierReward.exact_answer("24")
    assert v("24.0", S) == Feedback(1.0, {"correct": True})
    assert v("23", S).reward == 0.0

    def crash(action, state):
        raise ZeroDivisionError("1/0")

    out = VerifierReward(crash, reward_fail=-1.0)("x", S)
    assert out.reward == -1.0 and "ZeroDivisionError" in out.info["verifier_error"]


def test_llm_judge_reward_parses_and_clips():
    judge = ScriptedSampler(["Score: 7", "I rate it 42/10", "no idea"])
    r = LLMJudgeReward(judge, "Rate {action} for {topic} from 1 to 10.")
    state = LoopState(0, [], task={"topic": "poems"})
    assert r("text", state).reward == 7.0
    assert judge.calls[0][0] == "Rate text for poems from 1 to 10."
    assert r("text", state).reward == 10.0  # first number, clipped
    out = r("text", state)
    assert out.reward == 1.0 and out.info["judge_ok"] is False
