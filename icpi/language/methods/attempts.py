"""Earlier attempts as later prompts show them: reward tags placed, forged tags removed.

An attempt's response is shown whole when it fits; a long one is cut so that its start
and its final answer stay (:func:`~icpi.language.budget.shorten`) — the reward it earned
is about that answer. The only reward tags in a prompt are the real ones: tags a model
wrote itself are removed (:func:`strip_reward_tags`), and the task's reward marks
(``info["reward_marks"]``: offset in the response, reward) place the real ones.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from icpi.core import Attempt
from icpi.language.budget import CUT_MARK, cut_points
from icpi.language.tasks.base import reward_tag

RewardDisplay = Literal["real", "zero", "none"]
Span = Callable[[str], "tuple[int, int] | None"]

_MODEL_TAGS = (
    # <Reward: 3.00>, </reward>, <Return 19>
    re.compile(r"<\s*/?\s*(?:reward|return)\b[^>\n]*>", re.IGNORECASE),
    # a line that only states a reward: "Total reward: 19", "**Reward**: 3", "Return ="
    re.compile(
        r"^[ \t*_#>-]*(?:total[ \t]+)?(?:reward|return)\b[ \t*_]*[:=][ \t]*"
        r"(?:[-+]?\d+(?:\.\d+)?)?[ \t*_.]*$",
        re.IGNORECASE | re.MULTILINE,
    ),
    # (reward: 3), (reward=3)
    re.compile(r"\(\s*reward\s*[:=]\s*[-+]?\d+(?:\.\d+)?\s*\)", re.IGNORECASE),
)


def strip_reward_tags(text: str) -> str:
    """Remove reward statements a model wrote itself, and nothing else.

    Removed: ``<Reward: …>`` tags, lines that only state a reward (``Total reward: 19``,
    ``**Reward**: 3``) and ``(reward: 3)``; prose that mentions a return or a reward
    (``The expected return = 1/2, so …``) is kept. Lines are kept (emptied at worst).

    Args:
        text: A model's response.

    Returns:
        The text without forged tags.
    """
    for pattern in _MODEL_TAGS:
        text = pattern.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n"))


def tagged_response(
    attempt: Attempt,
    display: RewardDisplay = "real",
    max_chars: int | None = None,
    span: Span | None = None,
) -> str:
    """Write an attempt's response with its reward tags.

    Per-part rewards (``info["reward_marks"]``, Game of 24 steps and answer) are tagged
    where they belong and the total follows; other tasks get one tag after the text.

    Args:
        attempt: The attempt.
        display: ``real`` rewards, ``zero`` (all shown as 0) or ``none`` (no tags).
        max_chars: Cut the response to about this many characters first, keeping its
            start and its final answer.
        span: Where the final answer stands in a response (the task's
            :meth:`~icpi.language.tasks.base.LanguageTask.answer_span`).

    Returns:
        The tagged text.
    """
    raw = str(attempt.action or "")
    marks = sorted((int(o), float(r)) for o, r in attempt.info.get("reward_marks", []))
    head, start, end = len(raw), len(raw), len(raw)
    if max_chars is not None:
        head, start, end = cut_points(raw, max_chars, span(raw) if span else None)

    def shown(x: float) -> float:
        return 0.0 if display == "zero" or x != x else float(x)

    # Pieces of the kept text, each ending at a mark (tag after it) or at a cut.
    cuts = sorted({0, head, start, end, len(raw), *(o for o, _ in marks)})
    tags = dict(marks)
    out: list[str] = []
    for a, b in itertools.pairwise(cuts):
        if not (b <= head or start <= a < end):
            continue
        out.append(strip_reward_tags(raw[a:b]))
        if b in tags and display != "none" and (b <= head or start < b <= end):
            out.append(f" {reward_tag(shown(tags[b]))}")
        if b == head and head < start:
            out.append(CUT_MARK)
    n = len(raw)
    if (start == n and head < n) or (start < n and end < n):
        out.append(" …")
    text = "".join(out).rstrip()
    text = text if text.strip() else "(no response)"
    if display == "none":
        return text.strip()
    if marks:
        return f"{text.strip(chr(10))}\nTotal reward: {reward_tag(shown(attempt.reward))}"
    return f"{text.strip(chr(10))}\n{reward_tag(shown(attempt.reward))}"


def attempt_view(
    display: RewardDisplay = "real", max_chars: int | None = None, span: Span | None = None
) -> Callable[[Attempt], Mapping[str, Any]]:
    """Return a view rendering an attempt as an ``<attempt>`` block.

    Args:
        display: How rewards are shown (see :func:`tagged_response`).
        max_chars: Cut each response to about this many characters (keeping its answer).
        span: Where the final answer stands in a response.

    Returns:
        A view giving ``{"block": text, "reward": ...}``.
    """

    def view(attempt: Attempt) -> Mapping[str, Any]:
        body = tagged_response(attempt, display, max_chars, span)
        return {"block": f"<attempt>\nResponse:\n{body}\n</attempt>", "reward": attempt.reward}

    return view
