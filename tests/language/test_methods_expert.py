"""Issue 10: ME-ICPO votes and ablations, math answers, CoT-only / Long-CoT, expert steering."""

import pytest
from lang_support import EXACT, SOLUTION_3457, WRONG_3457, build, exact24, scripted

from icpi.core import Budget, LoopState, ParseResult, ScriptedSampler
from icpi.core.expert import (
    DEMO_HEADER,
    EXPERT_REJECTED,
    AnnealedExpertBonus,
    ExpertSampler,
    ExpertSelector,
    decay,
    with_demonstration,
)
from icpi.core.records import Feedback
from icpi.core.selectors import FirstValid, Selection
from icpi.errors import ConfigError
from icpi.language.config import lang_config
from icpi.language.mathcheck import answers_equal
from icpi.language.metering import Samplers
from icpi.language.methods import LangContext, get_method
from icpi.language.methods.cot import LONG_COT
from icpi.language.methods.icrl import MATH_MIN_ATTEMPTS, ICRLSettings
from icpi.language.methods.me_icpo import IDEAS_GOOD, IDEAS_PLAIN, MeIcpoSettings
from icpi.language.runner import expert_demonstrations, run_language
from icpi.language.tasks import Game24Settings, Game24Task, MathSettings, MathTask, Problem

S = LoopState(iteration=0, history=[])
C1, C2, C3 = "(6 - 4) * (4 + 8)", "(4 + 8) * (6 - 4)", "(4 + 8 - 6) * 4"
W = "4 + 4 + 6 + 8"  # 22


def resp(expr):
    return f"Step1: 4 + 8 = 12 (left: 4 6 12)\nAnswer: {expr} = 24"


@pytest.fixture
def p4468():
    return Problem(index=0, id="24:4 4 6 8", data={"numbers": [4, 4, 6, 8], "solvable": True})


# --------------------------------------------------------------------------- ME-ICPO
def me_model(candidates):
    def model(prompt, n, seed):
        if prompt.rstrip().endswith("Summary:"):
            return ["An idea."]
        return [resp(c) for c in candidates][:n]

    return model


def test_me_icpo_vote_pools_equal_answers_so_the_right_ones_win(p4468):
    # By strings, W (twice) beats each right expression (once each); by answer, 24 wins.
    _, samplers = scripted(me_model([W, W, C1, C2, C3]))
    loop = build("me-icpo", exact24(), p4468, samplers, k=5, entropy_k=2, final_k=2)
    a = loop.run(Budget(max_iterations=1)).attempts[0]
    assert a.selection["self_rewards"] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert a.selection["label_key"] == "24 using 4 4 6 8"


def test_combined_ablation_is_random_and_untagged(p4468):
    picks = set()
    for seed in range(6):
        sampler, samplers = scripted(me_model([C1, W, C2]))
        loop = build(
            "me-icpo", exact24(), p4468, samplers, seed=seed, k=3, entropy_k=2, final_k=2,
            ablation="no-entropy+no-reward",
        )  # fmt: skip
        result = loop.run(Budget(max_iterations=2))
        assert all(n != 2 for _, n, _ in sampler.calls)  # no entropy samples
        picks.add(result.attempts[0].selection["index"])
        round2 = [p for p, n, _ in sampler.calls if n == 3][1]
        assert IDEAS_PLAIN in round2 and IDEAS_GOOD not in round2
    assert len(picks) > 1
    with pytest.raises(ConfigError):
        lang_config(method="icrl-preset", ablation="no-entropy+no-reward")


# --------------------------------------------------------------------------- math
@pytest.mark.parametrize(
    "gold, answer, equal",
    [
        ("1/2", "0.5", True),
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{1}{2}", "1/2", True),
        ("0.5", "50\\%", True),
        ("2\\sqrt{2}", "\\sqrt{8}", True),
        ("12", "12.0", True),
        ("1000", "1,000", True),
        ("3", "x = 3", True),
        ("x^2+1", "1+x^2", True),
        ("-1/2", "-0.5", True),
        ("\\pi", "\\pi", True),
        ("3", "4", False),
        ("1/3", "0.333", False),
        ("\\sqrt{2}", "2", False),
        ("5", "I think it is five", False),
    ],
)
def test_math_answers_compare_symbolically(gold, answer, equal):
    assert answers_equal(gold, answer) is equal


def test_math_task_rewards_and_votes_equal_forms(tmp_path):
    task = MathTask(MathSettings(math_file=str(tmp_path / "unused.jsonl")))
    problem = Problem(0, "math:0", {"question": "Half of 1?", "answer": "\\frac{1}{2}"})
    reward = task.reward(problem, None)
    assert reward("so <answer>0.5</answer>", S).reward == 1.0
    assert reward("<answer>1/3</answer>", S).reward == 0.0
    keys = task.vote_keys(["0.5", "1/2", "2", None, "\\frac{1}{2}"])
    assert keys[0] == keys[1] == keys[4] and keys[2] != keys[0] and keys[3] is None


def test_math_context_holds_at_least_32_attempts(tmp_path):
    # Long answers: uncut, a handful would fill the context (the old code kept 3).
    long = "Let me think. " + "7 " * 1500 + "<answer>5</answer>"
    sampler = ScriptedSampler([long])
    task = MathTask(MathSettings(math_file=str(tmp_path / "unused.jsonl")))
    problem = Problem(0, "math:0", {"question": "2 + 3?", "answer": "5"})
    loop = build("icrl-preset", task, problem, Samplers.build(lambda role: sampler))
    loop.run(Budget(max_iterations=MATH_MIN_ATTEMPTS + 3))
    last = sampler.calls[-1][0]
    assert last.count("<attempt>\nResponse") >= MATH_MIN_ATTEMPTS
    assert last.count("<answer>5</answer>") >= MATH_MIN_ATTEMPTS  # cut, answers kept


# --------------------------------------------------------------------------- baselines
def test_cot_only_and_long_cot_answer_once(tmp_path):
    thought = f"<think>Step1: 1 + 1 = 2 (left: 2)\nAnswer: 1 + 1 = 2</think>\n{SOLUTION_3457}"

    def model(prompt, n, seed):
        return [thought if LONG_COT in prompt else WRONG_3457] * n

    exact = {"step_judge": "rule", "answer_judge": "verifier", "split": "random"}
    for method, success in (("cot-only", 0.0), ("long-cot", None)):
        s = ScriptedSampler(model)
        out = run_language(
            lang_config(method=method, problems=1, rounds=5, **exact), tmp_path / method,
            sampler=s,
        )  # fmt: skip
        assert out["rounds"] == 1 and len(s.calls) == 1
        if success is not None:
            assert out["final_success"] == success
    sampler, samplers = scripted([thought])
    p = Problem(0, "24:3 4 5 7", {"numbers": [3, 4, 5, 7], "solvable": True})
    loop = build("long-cot", exact24(), p, samplers)
    a = loop.run(Budget(max_iterations=1)).attempts[0]
    assert LONG_COT in sampler.calls[0][0] and "<think>" in sampler.calls[0][0]
    # Only the final response after </think> is scored: three sure steps and the bonus.
    assert a.reward == 19.0 and a.info["success"]


# --------------------------------------------------------------------------- expert (core)
def test_expert_sampler_conditions_a_share_of_the_samples():
    seen = []

    def model(prompt, n, seed):
        seen.append((prompt, n))
        return ["x"] * n

    steered = ExpertSampler(ScriptedSampler(model), ["Q: 1+1\nA: 2"], share=0.25)
    batch = steered.sample("Q: 2+2\nA:", 8, seed=3)
    assert len(batch.texts) == 8 and steered.last_expert == [False] * 6 + [True] * 2
    assert seen == [("Q: 2+2\nA:", 6), (f"{DEMO_HEADER}\nQ: 1+1\nA: 2\n\nQ: 2+2\nA:", 2)]
    # One sample per call: expert-conditioned in about share of the calls, repeatably.
    flags = []
    for seed in range(400):
        steered.sample("p", 1, seed)
        flags.append(steered.last_expert[0])
    assert 0.17 < sum(flags) / 400 < 0.33
    again = []
    for seed in range(400):
        steered.sample("p", 1, seed)
        again.append(steered.last_expert[0])
    assert again == flags
    chat = with_demonstration([{"role": "user", "content": "task"}], "demo")
    assert chat[0]["content"].startswith(DEMO_HEADER) and chat[0]["content"].endswith("task")
    with pytest.raises(ValueError):
        ExpertSampler(ScriptedSampler(model), [], share=0.5)


def test_expert_region_reject_sampling_drops_unreliable_expert_samples():
    steered = ExpertSampler(ScriptedSampler(["a", "b", "c", "d"]), ["demo"], share=0.5)
    steered.sample("p", 4, 0)
    results = [ParseResult(ok=True, value=v) for v in ("a", "b", "c", "d")]

    def accept(rs, expert, state):
        return [r.value != "c" for r in rs]  # the expert sample "c" is unreliable

    sel = ExpertSelector(FirstValid(), steered, accept)
    out = sel.select(results[2:] + results[:2], S)  # expert samples (last two) first
    assert out.info["expert"] == [False, False, True, True]
    assert out.info["expert_rejected"] == [] and out.index == 0
    out = ExpertSelector(FirstValid(), steered, accept).select(
        [ParseResult(ok=False, error="x")] * 2 + results[2:], S
    )
    assert out.info["expert_rejected"] == [2] and out.index == 3 and steered.chosen_expert
    assert EXPERT_REJECTED


def test_expert_selector_keeps_the_inner_choice():
    # An inner selector may synthesise a value of its own (a median): it must survive the
    # expert wrapper whole, or the loop acts on something else than was chosen.
    class OwnValue:
        def select(self, results, state):
            return Selection(index=0, value=[1.0], info={"k": 1})

    steered = ExpertSampler(ScriptedSampler(["a"]), ["demo"], share=0.0)
    out = ExpertSelector(OwnValue(), steered, None).select([ParseResult(ok=True)], S)
    assert (out.index, out.value, out.info["k"]) == (0, [1.0], 1)


def test_annealed_expert_bonus_decays_and_needs_success():
    assert [decay(t, 4) for t in (0, 1, 2, 4, 9)] == [1.0, 0.75, 0.5, 0.0, 0.0]
    assert decay(0, 4, "cosine") == 1.0 and decay(2, 4, "cosine") == pytest.approx(0.5)
    assert decay(4, 4, "exp") == pytest.approx(0.36788, abs=1e-4)
    steered = ExpertSampler(ScriptedSampler(["x"]), ["demo"], share=1.0)
    reward = AnnealedExpertBonus(
        lambda a, s: Feedback(float(a)), steered, beta=2.0, horizon=4, success_reward=1.0
    )
    steered.chosen_expert = True
    assert [reward(1, LoopState(t, [])).reward for t in (0, 2, 4)] == [3.0, 2.0, 1.0]
    assert reward(0, S).reward == 0.0  # a failure earns no bonus
    steered.chosen_expert = False
    fb = reward(1, S)
    assert fb.reward == 1.0 and fb.info["expert_bonus"] == 0.0 and fb.info["unshaped_reward"] == 1


# --------------------------------------------------------------------------- expert (wired)
def test_icrl_with_expert_demonstrations_and_bonus(tmp_path):
    p = Problem(0, "24:3 4 5 7", {"numbers": [3, 4, 5, 7], "solvable": True})
    sampler, samplers = scripted([SOLUTION_3457])
    ctx = LangContext(
        task=exact24(), samplers=samplers,
        demonstrations=("Input: 1 1 4 6\nAnswer: (1 + 1 + 4) * 4 = 24",),
    )  # fmt: skip
    settings = ICRLSettings(expert_share=1.0, expert_bonus=5.0, expert_anneal=2)
    loop, _ = get_method("icrl-preset")(ctx, settings).build(p)
    attempts = loop.run(Budget(max_iterations=3)).attempts
    assert all(c[0].startswith(DEMO_HEADER) for c in sampler.calls)
    assert [a.reward for a in attempts] == [24.0, 21.5, 19.0]  # 19 + 5 × (1, 0.5, 0)
    assert all(a.selection["expert_chosen"] for a in attempts)


def test_me_icpo_expert_candidates_that_disagree_are_rejected(p4468):
    def model(prompt, n, seed):
        if prompt.rstrip().endswith("Summary:"):
            return ["An idea."]
        if prompt.startswith(DEMO_HEADER):
            return [resp(W)] * n  # the expert-conditioned candidates disagree
        return [resp(C1), resp(C2), resp(C3)][:n]

    _, samplers = scripted(model)
    ctx = LangContext(task=exact24(), samplers=samplers, demonstrations=("a demo",))
    settings = MeIcpoSettings(k=5, entropy_k=2, final_k=2, expert_share=0.4, expert_reject=True)
    loop, _ = get_method("me-icpo")(ctx, settings).build(p4468)
    a = loop.run(Budget(max_iterations=1)).attempts[0]
    assert a.selection["expert"] == [False] * 3 + [True] * 2
    assert a.selection["expert_rejected"] == [3, 4]
    assert a.info["success"] is True


def test_game24_demonstrations_are_fixed_and_never_test_puzzles():
    from icpi.language import game24

    task = Game24Task()
    demos = expert_demonstrations(task, None, task.problems(0, 900, 3))
    assert len(demos) == 50
    # The same set whatever --problems says, and never a puzzle of the test split.
    assert demos == expert_demonstrations(task, None, task.problems(0, 900, 100))
    test = {" ".join(map(str, n)) for n in game24.standard_ranking()[900:1000]}
    assert not any(d.splitlines()[0].removeprefix("Input: ") in test for d in demos)
    # A run outside the test split never sees its own puzzles as demonstrations.
    everything = Game24Task(Game24Settings(split="all")).problems(0, 0, 1362)
    assert expert_demonstrations(task, None, everything) == []
    with pytest.raises(ConfigError, match="no demonstration is left"):
        cfg = lang_config(split="all", problems=1362, expert_share=0.5, **EXACT)
        run_language(cfg, "/nonexistent/never-created", sampler=ScriptedSampler(["x"]))
    first = demos[0].splitlines()
    assert first[1].startswith("Step1:") and first[-1].startswith("Answer:")
    numbers = [int(x) for x in first[0].split()[1:]]
    assert exact24().is_correct(Problem(0, "", {"numbers": numbers}), first[-1][8:-5])
    with pytest.raises(ConfigError, match="expert_share"):
        lang_config(expert_reject=True, method="me-icpo")
    with pytest.raises(ConfigError, match=r"expert_reject.*applies to me-icpo"):
        lang_config(expert_share=0.1, expert_reject=True)
