"""Prompt assembly of ICRL prompting (Preset, Autonomous, every ablation) and baselines."""

import pytest
from lang_support import SOLUTION_3457, WRONG_3457, build, exact24, scripted

from icpi.core import Budget
from icpi.errors import ConfigError
from icpi.language.methods.reflexion import REFLEXION_INSTRUCTION
from icpi.language.methods.self_refine import REFINE_INSTRUCTION
from icpi.language.prompts import PACKAGE

EXPLORE, EXPLOIT, CHOOSE = PACKAGE.explore, PACKAGE.exploit, PACKAGE.choose
INSTRUCTIONS = (EXPLORE, EXPLOIT, CHOOSE)


def run(method, puzzle, rounds=4, ablation=None, script=(WRONG_3457, SOLUTION_3457)):
    sampler, samplers = scripted(list(script))
    extra = {"ablation": ablation} if ablation else {}
    loop = build(method, exact24(), puzzle, samplers, **extra)
    result = loop.run(Budget(max_iterations=rounds))
    policy_prompts = [p for p, n, s in sampler.calls if "Input: 3 4 5 7" in p and n == 1]
    return result, policy_prompts, sampler


def instruction_of(prompt):
    found = [i for i in INSTRUCTIONS if i in prompt]
    assert len(found) <= 1
    return found[0] if found else None


def test_preset_alternates_explore_and_exploit(puzzle):
    result, prompts, _ = run("icrl-preset", puzzle)
    assert [instruction_of(p) for p in prompts] == [EXPLORE, EXPLOIT, EXPLORE, EXPLOIT]
    assert [a.reward for a in result.attempts] == [0.0, 19.0, 0.0, 19.0]
    assert [a.info["success"] for a in result.attempts] == [False, True, False, True]
    # Attempts first, then the instruction, then the task (ending with the puzzle).
    last = prompts[3]
    assert last.index("<attempt>") < last.index(EXPLOIT) < last.index("Game of 24")
    assert last.rstrip().endswith("Input: 3 4 5 7")
    assert last.count("<attempt>\nResponse") == 3 and "<attempt>\nResponse" not in prompts[0]


def test_reward_tags_per_step_and_total(puzzle):
    _, prompts, _ = run("icrl-preset", puzzle, rounds=3)
    p = prompts[2]
    assert "Step1: 7 - 5 = 2 (left: 2 3 4) <Reward: 3.00>" in p
    assert "Answer: (3 * 4) * (7 - 5) = 24 <Reward: 10.00>" in p
    assert "Total reward: <Reward: 19.00>" in p
    assert "Step1: 3 + 4 = 7 (left: 5 7 7) <Reward: 0.00>" in p
    assert "Total reward: <Reward: 0.00>" in p


def test_autonomous_always_lets_the_model_choose(puzzle):
    _, prompts, _ = run("icrl-autonomous", puzzle, rounds=3)
    assert [instruction_of(p) for p in prompts] == [CHOOSE] * 3


def test_zero_reward_shows_zeros(puzzle):
    _, prompts, _ = run("icrl-preset", puzzle, rounds=3, ablation="zero-reward")
    assert "<Reward: 19.00>" not in prompts[2] and "<Reward: 3.00>" not in prompts[2]
    assert "Total reward: <Reward: 0.00>" in prompts[2]


def test_no_reward_shows_no_tags(puzzle):
    result, prompts, _ = run("icrl-preset", puzzle, rounds=3, ablation="no-reward")
    assert "<Reward" not in prompts[2] and prompts[2].count("<attempt>\n") == 2
    assert result.attempts[1].reward == 19.0  # still recorded, just not shown


def test_short_context_keeps_last_three(puzzle):
    _, prompts, _ = run("icrl-preset", puzzle, rounds=6, ablation="short-context")
    assert [p.count("<attempt>\nResponse") for p in prompts] == [0, 1, 2, 3, 3, 3]


def test_explore_only_without_rewards(puzzle):
    _, prompts, _ = run("icrl-preset", puzzle, rounds=3, ablation="explore-only")
    assert [instruction_of(p) for p in prompts] == [EXPLORE] * 3
    assert "<Reward" not in prompts[2]


def test_exploit_only_with_rewards(puzzle):
    _, prompts, _ = run("icrl-autonomous", puzzle, rounds=3, ablation="exploit-only")
    assert [instruction_of(p) for p in prompts] == [EXPLOIT] * 3
    assert "<Reward: 19.00>" in prompts[2]


def test_no_instruction(puzzle):
    _, prompts, _ = run("icrl-preset", puzzle, rounds=3, ablation="no-instruction")
    assert [instruction_of(p) for p in prompts] == [None] * 3
    assert "Instruction:" not in prompts[2] and "<Reward: 19.00>" in prompts[2]


def test_best_of_n_samples_independently(puzzle):
    result, prompts, sampler = run("best-of-n", puzzle, rounds=3)
    assert len(set(prompts)) == 1 and "<attempt>" not in prompts[0]
    assert len({s for _, _, s in sampler.calls}) == 3  # a fresh seed every round
    assert [a.info["success"] for a in result.attempts] == [False, True, False]


def test_self_refine_shows_critiques_not_rewards(puzzle):
    critique = "Feedback text: step 1 wastes the 5."

    def model(prompt, n, seed):
        if prompt.rstrip().endswith("Feedback:"):
            return [critique]
        return [WRONG_3457] * n

    sampler, samplers = scripted(model)
    loop = build("self-refine", exact24(), puzzle, samplers)
    result = loop.run(Budget(max_iterations=3))
    assert [a.info["feedback"] for a in result.attempts] == [critique] * 3
    prompts = [p for p, _, _ in sampler.calls if not p.rstrip().endswith("Feedback:")]
    assert REFINE_INSTRUCTION not in prompts[0] and REFINE_INSTRUCTION in prompts[1]
    assert prompts[2].count(f"Feedback: {critique}") == 2 and "<Reward" not in prompts[2]


def test_reflexion_reflects_after_failures_only(puzzle):
    def model(prompt, n, seed):
        if prompt.rstrip().endswith("Reflection:"):
            return [f"reflection {seed}"]
        return [WRONG_3457 if seed % 2 == 0 else SOLUTION_3457] * n

    sampler, samplers = scripted(model)
    loop = build("reflexion", exact24(), puzzle, samplers, seed=2)
    result = loop.run(Budget(max_iterations=3))
    successes = [a.info["success"] for a in result.attempts]
    reflections = [bool(a.info["reflection"]) for a in result.attempts]
    assert reflections == [not s for s in successes] and any(successes) and not all(successes)
    last_prompt = [
        p for p, _, _ in sampler.calls if "Input: 3 4 5 7" in p and "Reflection:" not in p
    ][-1]
    assert REFLEXION_INSTRUCTION in last_prompt and "Last attempt:\n" in last_prompt
    assert "<Reward:" in last_prompt and "correct" not in last_prompt


@pytest.mark.parametrize(
    "method, ablation", [("best-of-n", "zero-reward"), ("icrl-preset", "no-entropy")]
)
def test_bad_ablations_are_refused(puzzle, method, ablation):
    _, samplers = scripted(["x"])
    with pytest.raises(ConfigError):
        build(method, exact24(), puzzle, samplers, ablation=ablation)


def test_empty_answers_never_crash(puzzle):
    result, _, _ = run("icrl-preset", puzzle, rounds=2, script=["   "])
    assert [a.source for a in result.attempts] == ["fallback", "fallback"]
    assert [a.reward for a in result.attempts] == [0.0, 0.0]
