"""Shared data and helpers of the language tests (not a conftest: imported by name)."""

from icpi.config import load
from icpi.core import ScriptedSampler
from icpi.language.metering import Samplers
from icpi.language.methods import LangContext, get_method

SOLUTION_3457 = """Step1: 7 - 5 = 2 (left: 2 3 4)
Step2: 3 * 4 = 12 (left: 2 12)
Step3: 12 * 2 = 24 (left: 24)
Answer: (3 * 4) * (7 - 5) = 24"""
WRONG_3457 = "Step1: 3 + 4 = 7 (left: 5 7 7)\nAnswer: 3 + 4 + 5 + 7 = 19"
#: Game of 24 with exact rewards (flat settings of a run).
EXACT = {"step_judge": "rule", "answer_judge": "verifier"}


def scripted(script):
    sampler = ScriptedSampler(script)
    return sampler, Samplers.build(lambda role: sampler)


def exact24(**settings):
    """Game of 24 with exact rewards (solver steps, verifier bonus): tests of the loops."""
    from icpi.language.tasks import Game24Settings, Game24Task

    return Game24Task(Game24Settings(**EXACT, **settings))


def build(method, task, problem, samplers, *, buffer=None, seed=0, **settings):
    """A method's loop on one problem; ``settings`` are the method's (flat)."""
    cls = get_method(method)
    m = cls(LangContext(task=task, samplers=samplers), load(cls.Settings, settings))
    loop, _ = m.build(problem, buffer=buffer, seed=seed)
    return loop
