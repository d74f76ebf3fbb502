"""ME-ICPO expressed with the core's pieces (a shape check for the later language-task issue).

Per round: k candidates → majority vote gives a pseudo-label → each valid candidate is tried
in context as a good (agrees) or bad idea, entropy_k samples are drawn with it, and the
candidate with minimum answer entropy is kept; memory grows by one summary per round.
"""

from icpi.core import (
    AllAttempts,
    Budget,
    CallableReward,
    ImprovementLoop,
    LoopPieces,
    LoopPolicy,
    MajorityVote,
    MinimumEntropy,
    PromptTemplate,
    ScriptedSampler,
    Selection,
    TextAnswerParser,
    answer_entropy,
)

PROMPT = PromptTemplate(
    header="Problem: {problem}",
    example=lambda ex: f"{'Good' if ex['reward'] > 0 else 'Bad'} idea: {ex['summary']}",
    query="Solve it; end with \\boxed{{answer}}.",
)


class MeIcpoSelector:
    def __init__(self, sampler, parser, entropy_k=4):
        self.sampler, self.parser, self.entropy_k = sampler, parser, entropy_k

    def select(self, results, state):
        label = MajorityVote().select(results, state).value

        def memory_with(summary, reward):
            return [*AllAttempts(view=_view).build(state), {"summary": summary, "reward": reward}]

        def entropy(result, st):
            ctx = memory_with(f"the answer is {result.value}", int(result.value == label))
            batch = self.sampler.sample(PROMPT.render(st, ctx), self.entropy_k, 0)
            answers = [r.value if r.ok else None for r in map(self.parser, batch.texts)]
            return answer_entropy(answers)

        best = MinimumEntropy(entropy).select(results, state)
        if best.index is None:
            return best
        value = {
            "summary": f"the answer is {best.value}",
            "answer": best.value,
            "self_reward": int(best.value == label),
        }
        return Selection(best.index, value, {**best.info, "pseudo_label": label})


def _view(attempt):
    return {"summary": attempt.action["summary"], "reward": attempt.reward}


def fake_model(prompt, n, seed):
    # With "Good idea: the answer is 4" in context the model is consistent; otherwise not.
    if "Good idea: the answer is 4" in prompt:
        return ["\\boxed{4}"] * n
    return ["\\boxed{4}", "\\boxed{5}", "\\boxed{4}", "no idea"][:n] * (n // 4 + 1)


def test_me_icpo_is_a_configuration_of_the_core():
    sampler = ScriptedSampler(fake_model)
    parser = TextAnswerParser()
    loop = ImprovementLoop(
        LoopPieces(
            context=AllAttempts(view=_view),
            prompt=PROMPT,
            sampler=sampler,
            parser=parser,
            selector=MeIcpoSelector(sampler, parser),
            reward=CallableReward(lambda action: float(action["self_reward"])),
        ),
        LoopPolicy(n_samples=4),
        task={"problem": "2 + 2"},
    )
    result = loop.run(Budget(max_iterations=2))
    assert [a.action["answer"] for a in result.attempts] == ["4", "4"]
    assert [a.reward for a in result.attempts] == [1.0, 1.0]
    assert result.attempts[0].selection["pseudo_label"] == "4"
    assert "Good idea: the answer is 4" in result.attempts[1].prompt
