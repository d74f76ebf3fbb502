"""The texts a language run shows the model: the package's own, or the ICRL paper's.

``--prompts package`` (the default) uses instructions and task texts written for this
package, with two Game of 24 demonstrations chosen outside the standard test split.
``--prompts paper`` uses the texts the ICRL paper prints (arXiv 2506.06303, Appendix A):
the exploration, exploitation and choice instructions (Figures 4–6), the Game of 24 task
with its 5 demonstrations (Figure 7), the writing task (Figure 8), the coherence judge
with its base answer (Figure 11) and the step judge (Figure 12), word for word; the texts
the paper does not print (the final-equation judge, the math task, critiques, reflections,
summaries) stay the package's. ``config.json`` records the set and the source of each text.

The paper's texts are short quotations kept for reproducing its experiments, with
attribution; ``icpi/language/data/icrl_paper_prompts.md`` holds the excerpt of the paper
they are taken from, and a test checks each text against it.

Note: the paper's third demonstration, ``4 9 10 13``, is puzzle rank 1000 of the standard
test split (its last puzzle): with ``--prompts paper`` that test puzzle is shown solved in
every prompt. A run that includes it says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: The two prompt sets.
PromptSetName = Literal["package", "paper"]
PROMPT_SETS: tuple[PromptSetName, ...] = ("package", "paper")


@dataclass(frozen=True)
class PromptSet:
    """The texts that exist in a package and a paper version."""

    name: PromptSetName
    """``package`` or ``paper``."""
    explore: str
    """Exploration instruction (ICRL Preset, even rounds)."""
    exploit: str
    """Exploitation instruction (ICRL Preset, odd rounds)."""
    choose: str
    """Exploration-or-exploitation instruction (ICRL Autonomous)."""
    game24_task: str
    """Game of 24 task text with its demonstrations (``{numbers}``)."""
    game24_demos: tuple[tuple[int, int, int, int], ...]
    """Puzzles solved in :attr:`game24_task` (never drawn as problems of random splits)."""
    step_judge: str
    """Game of 24 step judge (``{step}``: the step as written, ``{left}``: numbers left)."""
    writing_task: str
    """Writing task (``{s1}`` … ``{s4}``: the paragraphs' last sentences)."""
    writing_judge: str
    """Coherence judge (``{reference}``: the base passage, ``{action}``: the text)."""
    writing_reference: str
    """The base passage the coherence judge compares against."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """Where each text comes from (recorded in ``config.json``)."""


# --------------------------------------------------------------------------- package
_PACKAGE_EXPLORE = (
    "Instruction: Read every <attempt>...</attempt> above; each holds an earlier response to "
    "this task and the rewards it earned. Write a new response in which every step differs "
    "from the steps of all earlier attempts, while still following the task exactly."
)
_PACKAGE_EXPLOIT = (
    "Instruction: Read every <attempt>...</attempt> above; each holds an earlier response to "
    "this task and the rewards it earned. Learn from them and write the response you expect "
    "to earn a higher reward than any of them."
)
_PACKAGE_CHOOSE = (
    "Instruction: Read every <attempt>...</attempt> above; each holds an earlier response to "
    "this task and the rewards it earned. You may explore or exploit.\n"
    "Explore: write a response in which every step differs from the steps of all earlier "
    "attempts, while still following the task exactly.\n"
    "Exploit: learn from the earlier attempts and write the response you expect to earn a "
    "higher reward.\n"
    "Choose one of the two and follow it."
)
_PACKAGE_GAME24 = """\
Game of 24: combine the four input numbers with + - * / (each number used exactly once) \
so that the result is 24. Work in three steps; after each step list the numbers left. \
Then write the whole expression.

Example
Input: 2 3 4 6
Step1: 3 - 2 = 1 (left: 1 4 6)
Step2: 4 * 6 = 24 (left: 1 24)
Step3: 24 * 1 = 24 (left: 24)
Answer: (4 * 6) * (3 - 2) = 24

Example
Input: 3 4 5 7
Step1: 7 - 5 = 2 (left: 2 3 4)
Step2: 3 * 4 = 12 (left: 2 12)
Step3: 12 * 2 = 24 (left: 24)
Answer: (3 * 4) * (7 - 5) = 24

Reply in the same form: three Step lines, then one Answer line, even if it does not \
reach 24. Do not try again after the Answer line.
Input: {numbers}"""
_PACKAGE_STEP_JUDGE = """\
Game of 24 rule: combine all four input numbers, each used exactly once, with + - * / \
into 24, one pair of numbers per step (three steps).
A player made this step: {step}
Numbers left after it: {left}
Can the numbers left still be combined into 24? Reason briefly, then end with your \
verdict on its own line in this form: Answer: <score>, where sure = 3, likely = 1, \
impossible = 0.
Reasoning:"""
_PACKAGE_WRITING = """\
Write a coherent passage of 4 short paragraphs. Paragraph 1 must end with this \
sentence: {s1}
Paragraph 2 must end with: {s2}
Paragraph 3 must end with: {s3}
Paragraph 4 must end with: {s4}
First make a short plan, then write. Reply in this form:
Plan: <your plan>
Passage: <your passage>"""
_PACKAGE_WRITING_JUDGE = """\
You grade how coherent a text is, compared with a reference text. Score from 1 to 10: \
1 means far less coherent than the reference, 5 equally coherent, 10 far more coherent. \
Be strict; give a high score only to a text clearly better than the reference.

Reference:
{reference}

Text:
{action}

Reason briefly, then end with your verdict on its own line in this form: \
Coherence score: <integer 1-10>
Reasoning:"""
_PACKAGE_REFERENCE = (
    "Early in the morning the harbour is quiet. Fishing boats rock gently against the pier "
    "while gulls circle above, waiting for the first catch. A baker opens her shutters and "
    "the smell of warm bread drifts down to the water. Slowly the town wakes: doors open, "
    "bicycles rattle over cobblestones, and neighbours trade greetings. By the time the sun "
    "clears the hills, the harbour is busy again, and the calm of dawn lives on only in the "
    "memory of those who were up to see it."
)

PACKAGE = PromptSet(
    name="package",
    explore=_PACKAGE_EXPLORE,
    exploit=_PACKAGE_EXPLOIT,
    choose=_PACKAGE_CHOOSE,
    game24_task=_PACKAGE_GAME24,
    game24_demos=((2, 3, 4, 6), (3, 4, 5, 7)),
    step_judge=_PACKAGE_STEP_JUDGE,
    writing_task=_PACKAGE_WRITING,
    writing_judge=_PACKAGE_WRITING_JUDGE,
    writing_reference=_PACKAGE_REFERENCE,
    sources={"all": "written for icpi"},
)

# --------------------------------------------------------------------------- paper
# Quoted from arXiv 2506.06303, Appendix A (figure numbers below); see the module docstring.
_PAPER_EXPLORE = (  # Figure 4
    "Instruction: Examine all the `<attempt>...</attempt>` examples, each showing a candidate "
    "Response, and the Rewards for each step of the Response. Provide a response that is "
    "completely different for any steps from every single one of the previous attempts "
    "demonstrated in the context."
)
_PAPER_EXPLOIT = (  # Figure 5
    "Instruction: You will be given multiple `<attempt>...</attempt>` examples, each showing "
    "a candidate Response, and the Rewards for each step of the Response. Your task: Based "
    "on the previous attempts, try your best to produce a response that can achieve higher "
    "rewards."
)
_PAPER_CHOOSE = """\
Instruction: Examine all the `<attempt>...</attempt>` examples, each showing a candidate \
Response and its Reward. You have two options: exploration or exploitation.

For exploration, provide a response that is completely different for any steps from every \
single one of the previous attempts demonstrated in the context, while making sure it \
correctly follows the task instruction.

For exploitation, based on the previous attempts, try your best to produce a response that \
can achieve higher rewards.

Pick one option to follow."""  # Figure 6
_PAPER_GAME24 = """\
<attempt>
Input: 4 4 6 8
Step1: 4 + 8 = 12 (left: 4 6 12)
Step2: 6 - 4 = 2 (left: 2 12)
Step3: 2 * 12 = 24 (left: 24)
Answer: (6 - 4) * (4 + 8) = 24
</attempt>

<attempt>
Input: 2 9 10 12
Step1: 12 * 2 = 24 (left: 9 10 24)
Step2: 10 - 9 = 1 (left: 1 24)
Step3: 24 * 1 = 24 (left: 24)
Answer: (12 * 2) * (10 - 9) = 24
</attempt>

<attempt>
Input: 4 9 10 13
Step1: 13 - 10 = 3 (left: 3 4 9)
Step2: 9 - 3 = 6 (left: 4 6)
Step3: 4 * 6 = 24 (left: 24)
Answer: 4 * (9 - (13 - 10)) = 24
</attempt>

<attempt>
Input: 1 4 8 8
Step1: 8 / 4 = 2 (left: 1 2 8)
Step2: 1 + 2 = 3 (left: 3 8)
Step3: 3 * 8 = 24 (left: 24)
Answer: (1 + 8 / 4) * 8 = 24
</attempt>

<attempt>
Input: 5 5 5 9
Step1: 5 + 5 = 10 (left: 5 9 10)
Step2: 10 + 5 = 15 (left: 9 15)
Step3: 15 + 9 = 24 (left: 24)
Answer: ((5 + 5) + 5) + 9 = 24
</attempt>

**Task**: Use numbers and basic arithmetic operations (+ - * /) to obtain 24. Put your \
answer in this format ‘<answer>**Response** Step1: ... (left: ...) Step2: ... (left: ...) \
Step3: ... (left: ...) **Answer**’: <math operations of the 4 input numbers, even if it \
does not equal 24></answer>’. Whether it is correct or not, do not try again.

**Prompt**: Input: {numbers}"""  # Figure 7
_PAPER_STEP_JUDGE = """\
Rule of the Game of 24: Use all four numbers provided in the input, without repetition, and \
only basic arithmetic operations (+, −, ×, ÷) to obtain 24. Only three steps are allowed.

Given the following two remaining numbers from a previous step in the Game of 24, the \
current step is: {step}. Evaluate this step.

Examine the numbers shown in each “left: ...” after the step and reason whether it is still \
possible to reach 24: • Sure → 3 • Likely → 1 • Impossible → 0

Return the score in the following format: **Answer**: <integer score>

Response:"""  # Figure 12
_PAPER_WRITING = (  # Figure 8 (the figure's example sentences are the placeholders here)
    "Write a coherent passage of 4 short paragraphs. The end sentence of each paragraph must "
    "be: {s1} {s2} {s3} {s4} Make a plan then write. Your output should be of the following "
    "format: Plan: Your plan here. Passage: Your passage here."
)
_PAPER_WRITING_JUDGE = """\
Instruction: You are a seasoned text coherence evaluator. Read the TEXT below and rate its \
overall coherence on a scale from 1 to 10, where 1 means significantly less coherent than \
the Base Answer, 5 means equally coherent, and 10 means significantly more coherent. Be a \
strict and conservative evaluator-only assign high scores when the TEXT is clearly better \
than the Base Answer.

Base Answer:

{{{reference}}}

TEXT: {action}

Return your answer in exactly this format: Coherency score: <integer 1–10>.

Response:"""  # Figure 11 ("{ model_answer }" is where the text goes)
_PAPER_REFERENCE = (  # Figure 11's base answer
    "At dawn, golden light slips past pale curtains, rousing the world in quiet celebration. "
    "A lone robin greets the morning with a clear, cheerful trill, its song drifting across "
    "dew-laden grass. A gentle breeze stirs the leaves, carrying the fresh, earthy scent of "
    "new growth. Nearby, rooftops and empty streets lie poised between night’s calm and the "
    "city’s stirring pulse, promising simple comforts like a warm cup of coffee. In this "
    "tranquil pause, one senses life’s renewal and the gentle invitation to greet the day "
    "with hope and gratitude."
)

PAPER = PromptSet(
    name="paper",
    explore=_PAPER_EXPLORE,
    exploit=_PAPER_EXPLOIT,
    choose=_PAPER_CHOOSE,
    game24_task=_PAPER_GAME24,
    game24_demos=((4, 4, 6, 8), (2, 9, 10, 12), (4, 9, 10, 13), (1, 4, 8, 8), (5, 5, 5, 9)),
    step_judge=_PAPER_STEP_JUDGE,
    writing_task=_PAPER_WRITING,
    writing_judge=_PAPER_WRITING_JUDGE,
    writing_reference=_PAPER_REFERENCE,
    sources={
        "explore": "arXiv 2506.06303 Figure 4",
        "exploit": "arXiv 2506.06303 Figure 5",
        "choose": "arXiv 2506.06303 Figure 6",
        "game24_task": "arXiv 2506.06303 Figure 7 (5 demonstrations; 4 9 10 13 is test rank 1000)",
        "writing_task": "arXiv 2506.06303 Figure 8",
        "writing_judge": "arXiv 2506.06303 Figure 11",
        "step_judge": "arXiv 2506.06303 Figure 12",
        "answer_judge, math_task, critique, reflection, summary, long_cot": "written for icpi"
        " (not printed in the paper)",
    },
)


def prompt_set(name: PromptSetName) -> PromptSet:
    """The prompt set of a name.

    Args:
        name: ``package`` or ``paper``.

    Returns:
        The set.

    Raises:
        ValueError: On another name.
    """
    if name == "paper":
        return PAPER
    if name == "package":
        return PACKAGE
    raise ValueError(f"unknown prompt set {name!r} (choose from {PROMPT_SETS})")
