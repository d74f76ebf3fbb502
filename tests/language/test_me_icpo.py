"""ME-ICPO: majority-vote self-rewards, summaries, minimum-entropy choice, ablations, Mean@k."""

import math
import re

import pytest
from lang_support import exact24, scripted

from icpi.core import Budget
from icpi.errors import ConfigError
from icpi.language.methods import LangContext
from icpi.language.methods.me_icpo import (
    IDEAS_BAD,
    IDEAS_GOOD,
    IDEAS_PLAIN,
    MeIcpo,
    MeIcpoSettings,
    final_sampling,
)
from icpi.language.tasks import WritingTask

A = "3 * 4 * 5 - 7"  # the majority answer, wrong (53)
B = "(3 * 4) * (7 - 5)"  # the minority answer, right
K, EK = 4, 3


def resp(expr):
    return f"Step1: 7 - 5 = 2 (left: 2 3 4)\nAnswer: {expr} = 24" if expr else "no idea"


def make_model(with_a, with_b, candidates=(A, A, B, None)):
    """Candidates by vote A, A, B, invalid; entropy samples depend on the idea in context."""

    def model(prompt, n, seed):
        if prompt.rstrip().endswith("Summary:"):
            ans = re.findall(r"Answer: (.*) = 24", prompt)[-1]
            return [f"Combine the numbers as {ans}."]
        if n == EK:
            last_idea = [ln for ln in prompt.splitlines() if ln.startswith("- ")][-1]
            pool = with_b if B in last_idea else with_a
            return [resp(x) for x in pool]
        return [resp(x) for x in candidates][:n]

    return model


def build(puzzle, model, ablation=None, seed=0, final_k=K):
    sampler, samplers = scripted(model)
    settings = MeIcpoSettings(k=K, entropy_k=EK, final_k=final_k, ablation=ablation)
    method = MeIcpo(LangContext(task=exact24(), samplers=samplers), settings)
    loop, _ = method.build(puzzle, seed=seed)
    return loop, sampler, samplers


def test_picks_minimum_entropy_candidate_over_the_majority(puzzle):
    loop, sampler, _ = build(puzzle, make_model(with_a=[A, B, None], with_b=[B, B, B]))
    result = loop.run(Budget(max_iterations=2))
    first = result.attempts[0]
    sel = first.selection
    assert sel["pseudo_label"] == A.replace(" ", "")
    assert sel["self_rewards"] == [1.0, 1.0, 0.0, 0.0]
    assert sel["correct"] == [False, False, True, False]
    h_a = 1.0 + math.log2(EK) / EK  # A, B, invalid: 1 bit + the invalid-share penalty
    assert sel["entropies"][0] == pytest.approx(h_a) and sel["entropies"][2] == 0.0
    assert sel["entropies"][3] is None  # invalid candidate never scored
    assert sel["index"] == 2
    assert first.action["answer"] == B.replace(" ", "") and first.action["self_reward"] == 0.0
    assert first.reward == 0.0 and first.info["success"] is True
    assert first.info["mean_at_k"] == 0.25
    assert first.action["summary"].endswith(f"Final answer: {B.replace(' ', '')}")
    # Memory grows by the kept summary, listed as a bad idea (it disagreed with the vote).
    round2 = [p for p, n, _ in sampler.calls if n == K][1]
    assert IDEAS_BAD in round2 and IDEAS_GOOD not in round2
    assert f"- Combine the numbers as {B}." in round2
    assert round2.rstrip().endswith("Input: 3 4 5 7")
    # Entropy samples: one call of entropy_k per valid candidate and round.
    assert sum(n == EK for _, n, _ in sampler.calls) == 6


def test_invalid_answers_are_penalised(puzzle):
    # B's context yields one unanimous valid answer but mostly invalid ones: penalised.
    loop, _, _ = build(puzzle, make_model(with_a=[A, A, B], with_b=[B, None, None]))
    sel = loop.run(Budget(max_iterations=1)).attempts[0].selection
    h_a = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    h_b = math.log2(EK) * 2 / 3
    assert sel["entropies"][0] == pytest.approx(h_a) and sel["entropies"][2] == pytest.approx(h_b)
    assert h_a < h_b and sel["index"] == 0


def test_oracle_reward_uses_true_correctness(puzzle):
    loop, sampler, _ = build(puzzle, make_model([A, B, None], [B, B, B]), ablation="oracle")
    result = loop.run(Budget(max_iterations=2))
    assert result.attempts[0].selection["self_rewards"] == [0.0, 0.0, 1.0, 0.0]
    assert result.attempts[0].reward == 1.0
    round2 = [p for p, n, _ in sampler.calls if n == K][1]
    assert IDEAS_GOOD in round2 and IDEAS_BAD not in round2


def test_no_reward_lists_ideas_without_tags(puzzle):
    loop, sampler, _ = build(puzzle, make_model([A, B, None], [B, B, B]), ablation="no-reward")
    loop.run(Budget(max_iterations=2))
    round2 = [p for p, n, _ in sampler.calls if n == K][1]
    assert IDEAS_PLAIN in round2 and IDEAS_GOOD not in round2 and IDEAS_BAD not in round2


def test_no_entropy_picks_a_random_valid_candidate(puzzle):
    picks = set()
    for seed in range(8):
        loop, sampler, _ = build(puzzle, make_model([A], [B]), ablation="no-entropy", seed=seed)
        sel = loop.run(Budget(max_iterations=1)).attempts[0].selection
        assert "entropies" not in sel and all(n != EK for _, n, _ in sampler.calls)
        picks.add(sel["index"])
    assert picks <= {0, 1, 2} and len(picks) > 1


def test_no_valid_candidate_is_an_invalid_round(puzzle):
    loop, _, _ = build(puzzle, make_model([A], [B], candidates=(None,) * K))
    a = loop.run(Budget(max_iterations=1)).attempts[0]
    assert a.source == "invalid" and a.reward == 0.0 and a.action is None


def test_final_sampling_mean_and_majority(puzzle):
    loop, _, samplers = build(puzzle, make_model([A, B, None], [B, B, B]))
    loop.run(Budget(max_iterations=1))
    final = final_sampling(loop, exact24(), puzzle, samplers, K)
    assert final["correct"] == [False, False, True, False]
    assert final["mean_at_k"] == 0.25 and final["maj_answer"] == A.replace(" ", "")
    assert final["maj_at_k"] is False and final["usage"]["calls"] == 1


def test_me_icpo_needs_final_answers(puzzle):
    from icpi.config import load

    _, samplers = scripted(["x"])
    with pytest.raises(ConfigError, match="final answers"):
        MeIcpo(LangContext(task=WritingTask(), samplers=samplers))
    with pytest.raises(ConfigError, match="ablation"):
        load(MeIcpoSettings, {"ablation": "zero-reward"})
