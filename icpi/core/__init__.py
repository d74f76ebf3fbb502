"""The shared in-context improvement core (no MuJoCo, no ROS).

Pieces, each a small protocol with a few implementations:

- records: :class:`Attempt`, :class:`Feedback`, :class:`LoopState`
- :class:`ExperienceBuffer`: append-only JSONL with resume
- context builders: :class:`AllAttempts`, :class:`LastN`, :class:`SortedByReward`,
  :class:`KNearest`
- :class:`PromptTemplate`: completion text or chat messages, fixed numeric precision
- samplers: :class:`LLMSampler`, :class:`ScriptedSampler`
- parsers: :class:`NumericVectorParser`, :class:`TextAnswerParser`, :class:`FailureCounter`
- selectors: :class:`FirstValid`, :class:`MajorityVote`, :class:`MinimumEntropy`,
  :class:`NumericConsensus`
- rewards: :class:`CallableReward`, :class:`VerifierReward`, :class:`LLMJudgeReward`
- :class:`ImprovementLoop` with a :class:`Budget`; :class:`RunDir` for run directories

ICPI on robots, ICRL prompting and ME-ICPO are configurations of these pieces;
:mod:`icpi.core.toy` shows ICPI's on a linear toy task.
"""

from icpi.core.buffer import BufferMismatchError, ExperienceBuffer
from icpi.core.context import AllAttempts, ContextBuilder, KNearest, LastN, SortedByReward
from icpi.core.loop import (
    Budget,
    Draw,
    ImprovementLoop,
    LoopPieces,
    LoopPolicy,
    LoopResult,
    Proposal,
    derive_seed,
    summarise,
)
from icpi.core.parsing import (
    FailureCounter,
    NumericVectorParser,
    Parser,
    ParseResult,
    TextAnswerParser,
    find_numbers,
    normalise_answer,
)
from icpi.core.prompts import Prompt, PromptTemplate, format_number
from icpi.core.records import Attempt, Feedback, LoopState, jsonable
from icpi.core.rewards import CallableReward, LLMJudgeReward, RewardProvider, VerifierReward
from icpi.core.rundir import RunDir
from icpi.core.samplers import (
    LLMSampler,
    SampleBatch,
    Sampler,
    ScriptedSampler,
    copy_nearest_example,
)
from icpi.core.secrets import redact, redact_text, redact_url
from icpi.core.selectors import (
    FirstValid,
    MajorityVote,
    MinimumEntropy,
    NumericConsensus,
    Selection,
    Selector,
    answer_entropy,
)

__all__ = [
    "AllAttempts",
    "Attempt",
    "Budget",
    "BufferMismatchError",
    "CallableReward",
    "ContextBuilder",
    "Draw",
    "ExperienceBuffer",
    "FailureCounter",
    "Feedback",
    "FirstValid",
    "ImprovementLoop",
    "KNearest",
    "LLMJudgeReward",
    "LLMSampler",
    "LastN",
    "LoopPieces",
    "LoopPolicy",
    "LoopResult",
    "LoopState",
    "MajorityVote",
    "MinimumEntropy",
    "NumericConsensus",
    "NumericVectorParser",
    "ParseResult",
    "Parser",
    "Prompt",
    "PromptTemplate",
    "Proposal",
    "RewardProvider",
    "RunDir",
    "SampleBatch",
    "Sampler",
    "ScriptedSampler",
    "Selection",
    "Selector",
    "SortedByReward",
    "TextAnswerParser",
    "VerifierReward",
    "answer_entropy",
    "copy_nearest_example",
    "derive_seed",
    "find_numbers",
    "format_number",
    "jsonable",
    "normalise_answer",
    "redact",
    "redact_text",
    "redact_url",
    "summarise",
]
