"""The loop split into propose (ask) and complete (tell), and re-sampling temperature."""

from __future__ import annotations

from dataclasses import dataclass, field

from icpi.core import (
    CallableReward,
    Feedback,
    FirstValid,
    ImprovementLoop,
    LastN,
    LLMSampler,
    LoopPieces,
    LoopPolicy,
    NumericVectorParser,
    PromptTemplate,
    ScriptedSampler,
)


def make_loop(sampler, seed=0, **policy):
    return ImprovementLoop(
        LoopPieces(
            context=LastN(3),
            prompt=PromptTemplate(example="{action} {reward}", query="next:"),
            sampler=sampler,
            parser=NumericVectorParser(1),
            selector=FirstValid(),
            reward=CallableReward(lambda a: -abs(a[0] - 3.0)),
        ),
        LoopPolicy(**policy),
        seed=seed,
    )


def test_propose_then_complete_equals_step():
    a = make_loop(ScriptedSampler([" 1", " 2", " 3"]), seed=5)
    b = make_loop(ScriptedSampler([" 1", " 2", " 3"]), seed=5)
    for _ in range(3):
        stepped = a.step(a.state())
        a.buffer.append(stepped)
        proposal = b.propose(b.state())
        assert proposal.action == stepped.action and proposal.source == "model"
        told = b.complete(proposal, Feedback(-abs(proposal.action[0] - 3.0)))
        b.buffer.append(told)
        assert (told.reward, told.samples, told.llm["keys"]) == (
            stepped.reward,
            stepped.samples,
            stepped.llm["keys"],
        )


@dataclass
class Recorder:
    calls: list[dict] = field(default_factory=list)

    def generate(self, prompt, **params):
        self.calls.append(params)

        @dataclass
        class R:
            texts: tuple = ("junk",)
            prompt_tokens: int = 1
            completion_tokens: int = 1
            latency_s: float = 0.0
            cached: bool = False
            key: str = "k"

        return R()


def test_resamples_of_the_same_prompt_use_the_resample_temperature():
    client = Recorder()
    loop = make_loop(
        LLMSampler(client, temperature=0.0, resample_temperature=0.7),
        max_resamples=2,
        initial_action=lambda s: [0.0],
        fallback=lambda s: [1.0],
    )
    loop.buffer.append(loop.step(loop.state()))  # θ0, no call
    attempt = loop.step(loop.state())
    assert attempt.source == "fallback"
    assert [c["temperature"] for c in client.calls] == [0.0, 0.7, 0.7]


def test_the_preset_is_asked_only_after_the_initial_action():
    # icpi+'s preset re-runs the best θ, which needs a first rollout: a budget of one is θ0.
    asked = []

    def preset(state):
        asked.append(state.iteration)
        return ([2.0], "best") if state.iteration == 1 else None

    loop = make_loop(ScriptedSampler([" 9"]), initial_action=lambda s: [0.0], preset=preset)
    first = loop.step(loop.state())
    loop.buffer.append(first)
    second = loop.step(loop.state())
    assert (first.source, second.source, second.action) == ("initial", "best", [2.0])
    assert asked == [1]
