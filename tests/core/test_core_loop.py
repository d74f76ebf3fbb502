import json
import math

import numpy as np
import pytest

from icpi.core.buffer import ExperienceBuffer
from icpi.core.context import AllAttempts, LastN
from icpi.core.loop import Budget, ImprovementLoop, LoopPieces, LoopPolicy, derive_seed
from icpi.core.parsing import NumericVectorParser, TextAnswerParser
from icpi.core.prompts import PromptTemplate
from icpi.core.rewards import CallableReward, VerifierReward
from icpi.core.samplers import ScriptedSampler, copy_nearest_example
from icpi.core.selectors import FirstValid, MajorityVote
from icpi.core.toy import ToyLinearTask, make_toy_improver


def _numeric_loop(script, *, buffer=None, fallback=None, n=1, max_resamples=1, model_errors=()):
    return ImprovementLoop(
        LoopPieces(
            context=LastN(3),
            prompt=PromptTemplate(example="{action} -> {reward}", query="next:"),
            sampler=ScriptedSampler(script),
            parser=NumericVectorParser(2, low=-1, high=1),
            selector=FirstValid(),
            reward=CallableReward(lambda a: -float(np.sum(np.square(a)))),
        ),
        LoopPolicy(
            n_samples=n, max_resamples=max_resamples, fallback=fallback, model_errors=model_errors
        ),
        buffer=buffer,
    )


def test_toy_improver_with_pattern_completing_double_improves():
    task = ToyLinearTask.sample(1)
    loop = make_toy_improver(task, ScriptedSampler(copy_nearest_example), k=10)
    result = loop.run(Budget(max_iterations=8))
    costs = [a.info["cost"] for a in result.attempts]
    assert result.attempts[0].source == "initial" and result.attempts[0].prompt is None
    assert min(costs[1:]) < 0.2 * costs[0]
    assert result.best is not None and result.best.info["cost"] == min(costs)
    assert result.stats["model_calls"] == 7
    assert result.stats["parse"] == {"ok": 7}
    first = result.attempts[1]
    assert first.prompt.count("->") == 12  # header + 10 examples + the query line
    assert first.prompt.rstrip().endswith("->")
    lo, hi = task.low, task.high
    assert all(lo <= x <= hi for a in result.attempts for x in a.action)


def test_toy_improver_consensus_and_fallback():
    task = ToyLinearTask.sample(2)
    bad = ScriptedSampler(["I would push harder", "1 2 3", "nan 0", "1e99 0", ""])
    loop = make_toy_improver(task, bad, n_samples=5)
    result = loop.run(Budget(max_iterations=3))
    assert [a.source for a in result.attempts] == ["initial", "fallback", "fallback"]
    # every round of 5 malformed answers is counted by failure code
    assert result.stats["parse"] == {
        "no_numbers": 4,
        "arity": 4,
        "non_finite": 4,
        "too_large": 4,
        "empty": 4,
    }
    assert result.attempts[1].valid is False
    assert np.isfinite(result.attempts[2].reward)


def test_malformed_then_valid_resamples_with_new_seed():
    loop = _numeric_loop(["prose only", "0.5 0.5 0.5", "0.1 -0.2"], max_resamples=2)
    result = loop.run(Budget(max_iterations=1))
    a = result.attempts[0]
    assert a.source == "model" and a.samples == ["prose only", "0.5 0.5 0.5", "0.1 -0.2"]
    assert a.parse_errors == ["no_numbers", "arity", None]
    assert a.selection["index"] == 2 and a.selection["round"] == 2
    np.testing.assert_allclose(a.action, [0.1, -0.2])
    seeds = [c[2] for c in loop.sampler.calls]
    assert len(set(seeds)) == 3


def test_no_valid_answer_without_fallback_records_invalid():
    calls = []
    loop = _numeric_loop([""], max_resamples=0)
    loop.pieces.reward = CallableReward(lambda a: calls.append(a) or 0.0)
    result = loop.run(Budget(max_iterations=2))
    assert [a.source for a in result.attempts] == ["invalid", "invalid"]
    assert all(math.isnan(a.reward) for a in result.attempts)
    assert calls == []  # nothing evaluated
    assert result.best is None


def test_huge_values_are_clipped_never_passed_through():
    loop = _numeric_loop(["5 -7"])
    a = loop.run(Budget(max_iterations=1)).attempts[0]
    np.testing.assert_allclose(a.action, [1.0, -1.0])


def test_budget_limits():
    r = _numeric_loop(["0.1 0.1"]).run(Budget(max_iterations=50, max_model_calls=3))
    assert r.stop_reason == "model_calls" and len(r.attempts) == 3
    r = _numeric_loop(["0.1 0.1"]).run(Budget(max_iterations=50, max_tokens=5))
    assert r.stop_reason == "tokens"
    r = _numeric_loop(["0.5 0.5", "0 0", "0.9 0.9"]).run(
        Budget(max_iterations=10, target_reward=-0.01)
    )
    assert r.stop_reason == "target" and len(r.attempts) == 2
    r = _numeric_loop(["0.1 0.1"]).run(Budget(max_iterations=10**6, max_seconds=0.05))
    assert r.stop_reason == "seconds"


def test_resume_after_kill_redoes_nothing(tmp_path):
    task = ToyLinearTask.sample(3)
    path = tmp_path / "attempts.jsonl"
    full = make_toy_improver(task, ScriptedSampler(copy_nearest_example)).run(
        Budget(max_iterations=6)
    )

    class Killed(Exception):
        pass

    sampler = ScriptedSampler(copy_nearest_example)
    loop = make_toy_improver(task, sampler, buffer=ExperienceBuffer(path, fingerprint={"t": 3}))
    original = loop.reward

    def dying_reward(action, state):
        if state.iteration == 4:
            raise Killed
        return original(action, state)

    loop.pieces.reward = dying_reward
    with pytest.raises(Killed):
        loop.run(Budget(max_iterations=6))
    assert len(ExperienceBuffer(path)) == 4

    sampler2 = ScriptedSampler(copy_nearest_example)
    resumed = make_toy_improver(
        task, sampler2, buffer=ExperienceBuffer(path, fingerprint={"t": 3})
    ).run(Budget(max_iterations=6))
    assert resumed.resumed == 4
    assert len(sampler2.calls) == 2  # only iterations 4 and 5 were asked
    assert [a.action for a in resumed.attempts] == [a.action for a in full.attempts]
    assert [a.reward for a in resumed.attempts] == pytest.approx([a.reward for a in full.attempts])
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 6
    assert all(json.loads(line) for line in lines)
    # a finished run resumed again does nothing
    again = make_toy_improver(
        task, ScriptedSampler(copy_nearest_example), buffer=ExperienceBuffer(path)
    )
    assert again.run(Budget(max_iterations=6)).resumed == 6


def test_derive_seed():
    assert derive_seed(None, 3) is None
    seeds = {derive_seed(0, i, r) for i in range(50) for r in range(3)}
    assert len(seeds) == 150
    assert derive_seed(1, 0) != derive_seed(0, 0)


def test_icrl_style_text_configuration():
    """ICRL prompting as a configuration: all attempts with reward tags, explore/exploit."""
    answers = ["<answer>3</answer>", "<answer>5</answer>", "<answer>4</answer>"]
    sampler = ScriptedSampler(answers)
    loop = ImprovementLoop(
        LoopPieces(
            context=AllAttempts(),
            prompt=PromptTemplate(
                header="Problem: {problem}",
                example="Attempt {iteration}: {action} <Reward: {reward:.0f}>",
                query="{instruction}",
                instruction=lambda s: "Try something new." if s.iteration % 2 == 0 else "Refine.",
                system="Answer in <answer></answer> tags.",
            ),
            sampler=sampler,
            parser=TextAnswerParser(),
            selector=MajorityVote(),
            reward=VerifierReward.exact_answer("4"),
        ),
        task={"problem": "2 + 2"},
    )
    result = loop.run(Budget(max_iterations=5, target_reward=1.0))
    assert [a.action for a in result.attempts] == ["3", "5", "4"]
    assert result.stop_reason == "target"
    last_prompt = sampler.calls[-1][0]
    assert last_prompt[1]["content"].splitlines() == [
        "Problem: 2 + 2",
        "Attempt 0: 3 <Reward: 0>",
        "Attempt 1: 5 <Reward: 0>",
        "Try something new.",
    ]


def test_model_errors_fall_back_only_when_declared():
    class Unavailable(RuntimeError):
        pass

    class Flaky:
        calls = 0

        def sample(self, prompt, n, seed):
            self.calls += 1
            raise Unavailable("endpoint down")

    loop = _numeric_loop(["unused"], fallback=lambda s: [0.0, 0.0], model_errors=(Unavailable,))
    loop.pieces.sampler = Flaky()
    a = loop.run(Budget(max_iterations=1)).attempts[0]
    assert a.source == "fallback" and a.llm["errors"] == ["Unavailable: endpoint down"] * 2
    assert loop.sampler.calls == 2  # first round + one re-sample
    strict = _numeric_loop(["unused"], fallback=lambda s: [0.0, 0.0])
    strict.pieces.sampler = Flaky()
    with pytest.raises(Unavailable):
        strict.run(Budget(max_iterations=1))
    assert len(strict.buffer) == 0
