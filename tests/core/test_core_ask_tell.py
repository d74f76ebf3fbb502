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
    Proposal,
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


def test_draw_keeps_every_answer_of_every_round_and_the_selection():
    # a caller that chooses among the answers itself (icpi+) needs all of them
    loop = make_loop(ScriptedSampler(["junk", " 4"]), max_resamples=1, n_samples=1)
    loop.buffer.append(loop.complete(Proposal.direct(0, [0.0], "initial"), Feedback(-3.0)))
    draw = loop.draw(loop.state())
    assert draw.samples == ["junk", " 4"] and [r.ok for r in draw.results] == [False, True]
    assert draw.selection.index == 1 and draw.selection.info["round"] == 1
    assert draw.llm["calls"] == 2 and draw.prompt.endswith("next:")
