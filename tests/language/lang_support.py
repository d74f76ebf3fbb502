"""Shared data and helpers of the language tests (not a conftest: imported by name)."""

from icpi.core import ScriptedSampler
from icpi.language.common import Samplers

SOLUTION_3457 = """Step1: 7 - 5 = 2 (left: 2 3 4)
Step2: 3 * 4 = 12 (left: 2 12)
Step3: 12 * 2 = 24 (left: 24)
Answer: (3 * 4) * (7 - 5) = 24"""
WRONG_3457 = "Step1: 3 + 4 = 7 (left: 5 7 7)\nAnswer: 3 + 4 + 5 + 7 = 19"


def scripted(script):
    sampler = ScriptedSampler(script)
    return sampler, Samplers.build(lambda role: sampler)


def exact24():
    """Game of 24 with exact rewards (solver steps, verifier bonus): tests of the loops."""
    from icpi.language.tasks import Game24Task

    return Game24Task(step_judge="rule", answer_judge="verifier")
