"""How much text a prompt may hold: token budgets, context refusals, cut texts.

- :class:`TokenBudget`: the prompt tokens allowed, tokens estimated from characters at the
  ratio the server reported for earlier prompts; a context-length refusal in the history
  lowers it (to the window the refusal names, else by :data:`OVERFLOW_SHRINK`).
- :class:`Budgeted`: keeps the examples nearest the query that fit the budget.
- :class:`OverflowGuard`: turns an endpoint's context-length refusal into
  :class:`ContextOverflowError` (a failed round, never a crash).
- :func:`shorten`: cuts a long response for a later prompt, keeping its start and its final
  answer (the reward it earned is about that answer).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from icpi.core import Attempt, ContextBuilder, LoopState, SampleBatch, Sampler
from icpi.core.prompts import Prompt
from icpi.llm.errors import LLMBadRequestError, LLMUnavailableError

log = logging.getLogger(__name__)

#: Tokens per character assumed before any prompt has been measured (digits tokenise one
#: by one on small models: one token per character is the worst case).
PRIOR_TOKENS_PER_CHAR = 1.0
#: Safety factor on the measured tokens per character.
RATIO_MARGIN = 1.1
#: Each context-length refusal that names no window shrinks the budget by this factor.
OVERFLOW_SHRINK = 0.75
#: Prompt budget of an endpoint whose context length is unknown, tokens.
DEFAULT_CONTEXT_TOKENS = 32_768
#: Tokens kept free between a prompt plus its completion and the context window (chat
#: templates add a few tokens the character estimate does not see).
CONTEXT_MARGIN = 64
#: Where a cut text was cut.
CUT_MARK = "\n[…]\n"


class ContextOverflowError(RuntimeError):
    """The endpoint refused a prompt as longer than its context window.

    Its message is the endpoint's refusal; it is recorded with the failed attempt, and
    :meth:`TokenBudget.limit` reads the window from it (:func:`window_in_message`).
    """


_OVERFLOW = re.compile(
    r"HTTP 4\d\d.*(context|maximum.{0,40}length|exceed|too long|too many tokens)",
    re.IGNORECASE | re.DOTALL,
)
#: How endpoints name their window in a refusal: vLLM and OpenAI ("maximum context length
#: is 4096 tokens"), llama.cpp ("exceed context window of 4096"), others ("context length
#: of 4096", "context size (4096)").
_WINDOW = re.compile(
    r"(?:maximum context length is|context (?:window|length|size)(?: of| is)?)\s*\(?\s*(\d+)",
    re.IGNORECASE,
)


def window_in_message(message: str) -> int | None:
    """The context window a context-length refusal names, if it names one.

    Args:
        message: The refusal.

    Returns:
        Tokens, or ``None``.
    """
    m = _WINDOW.search(message)
    return int(m.group(1)) if m else None


def prompt_text(prompt: Prompt | None) -> str:
    """The text of a prompt (chat messages joined).

    Args:
        prompt: Text or chat messages.

    Returns:
        The text.
    """
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt)


#: How far a kept span is extended to the start and end of its line, characters.
LINE_REACH = 200


def cut_points(
    text: str, max_chars: int, keep: tuple[int, int] | None = None
) -> tuple[int, int, int]:
    """Where :func:`shorten` cuts a text: it keeps ``text[:head]`` and ``text[start:end]``.

    Args:
        text: The text.
        max_chars: Characters allowed.
        keep: ``(start, end)`` of a span to keep, or ``None``.

    Returns:
        ``(head, start, end)``; ``(n, n, n)`` (``n = len(text)``) when the text fits, and
        ``(head, n, n)`` when only the end is cut.
    """
    n = len(text)
    if n <= max_chars:
        return n, n, n
    if keep is None:
        return max(max_chars - 2, 0), n, n
    line_start = text.rfind("\n", 0, keep[0]) + 1
    start = line_start if keep[0] - line_start <= LINE_REACH else keep[0]
    line_end = text.find("\n", keep[1])
    line_end = n if line_end < 0 else line_end
    end = line_end if line_end - keep[1] <= LINE_REACH else keep[1]
    start = max(start, end - max_chars)  # a span longer than the room keeps its end
    head = min(max(max_chars - (end - start) - len(CUT_MARK), 0), start)
    return head, start, end


def shorten(text: str, max_chars: int, keep: tuple[int, int] | None = None) -> str:
    """Cut a text to about ``max_chars`` characters, keeping its start and one span.

    The kept span (a final answer, with the rest of its line) is never cut unless it alone
    is longer than ``max_chars``; the text between the start and it is replaced by
    :data:`CUT_MARK`, and text after it is dropped (marked ``…``). Without a span the end
    is cut (marked ``…``).

    Args:
        text: The text.
        max_chars: Characters allowed.
        keep: ``(start, end)`` offsets of the span to keep (the final answer), or ``None``.

    Returns:
        The text itself when it fits, else the cut text.
    """
    head, start, end = cut_points(text, max_chars, keep)
    n = len(text)
    if start == n:
        return text if head == n else text[:head] + " …"
    middle = CUT_MARK if head < start else ""
    return f"{text[:head]}{middle}{text[start:end]}{' …' if end < n else ''}"


class TokenBudget:
    """How many tokens a prompt may hold, and how many a text takes.

    Tokens are estimated from characters with the largest tokens-per-character ratio
    measured on this problem's earlier prompts (the server reports each prompt's tokens;
    single-sample calls only), times a margin, or :data:`PRIOR_TOKENS_PER_CHAR` before any
    measurement. Everything is derived from the history, so a resumed run builds the same
    prompts. A context-length refusal in the history lowers the budget: to the window it
    names minus :attr:`reserve`, else by :data:`OVERFLOW_SHRINK` (a run never fails twice on
    the same length).
    """

    def __init__(self, tokens: int, reserve: int = 0) -> None:
        """Create the budget.

        Args:
            tokens: Prompt tokens allowed (the endpoint's context minus the completion).
            reserve: Tokens a request needs besides its prompt (completion and margin):
                a refusal naming a window ``W`` caps the budget at ``W - reserve``.

        Raises:
            ValueError: If ``tokens`` < 1.
        """
        if tokens < 1:
            raise ValueError(f"the context budget must be >= 1 token, got {tokens}")
        self.tokens = tokens
        self.reserve = reserve

    @staticmethod
    def ratio(history: Sequence[Attempt]) -> float:
        """Tokens per character to assume, from the measured prompts.

        Args:
            history: Finished attempts.

        Returns:
            The ratio.
        """
        seen = []
        for a in history:
            text = prompt_text(a.prompt)
            p = int(a.llm.get("prompt_tokens", 0) or 0)
            if text and p > 0 and a.llm.get("calls") == 1 and len(a.samples) == 1:
                seen.append(p / len(text))
        return max(seen) * RATIO_MARGIN if seen else PRIOR_TOKENS_PER_CHAR

    @staticmethod
    def count(text: str, ratio: float) -> int:
        """Estimated tokens of a text.

        Args:
            text: The text.
            ratio: Tokens per character.

        Returns:
            The estimate (rounded up).
        """
        return math.ceil(len(text) * ratio)

    def limit(self, history: Sequence[Attempt]) -> int:
        """The budget after the context-length refusals seen in the history.

        Args:
            history: Finished attempts.

        Returns:
            Tokens.
        """
        tokens = self.tokens
        for a in history:
            for e in a.llm.get("errors", []):
                if not str(e).startswith(ContextOverflowError.__name__):
                    continue
                window = window_in_message(str(e))
                if window is not None and window - self.reserve < tokens:
                    tokens = max(window - self.reserve, 1)
                else:
                    tokens = max(int(tokens * OVERFLOW_SHRINK), 1)
        return tokens


class Budgeted:
    """Keep the examples nearest the query (the list's end) that fit a token budget.

    Each example's ``block`` text is counted; the task text and instruction
    (``overhead(state)``) are counted first. Examples come oldest (or worst) first, so the
    newest (or best) are kept.
    """

    def __init__(
        self,
        inner: ContextBuilder,
        budget: TokenBudget,
        overhead: Callable[[LoopState], str],
        separator: str = "\n\n",
    ) -> None:
        """Wrap a context builder.

        Args:
            inner: Builds ``{"block": text}`` examples in prompt order.
            budget: The prompt budget.
            overhead: The rest of the prompt of a state (task text, instruction).
            separator: Text between parts of the prompt.
        """
        self.inner = inner
        self.budget = budget
        self.overhead = overhead
        self.separator = separator

    def build(self, state: LoopState) -> list[Mapping[str, Any]]:
        """Return the newest examples that fit.

        Args:
            state: The loop state.

        Returns:
            The kept examples, in prompt order.
        """
        return self.fit(self.inner.build(state), state)

    def fit(
        self, examples: Sequence[Mapping[str, Any]], state: LoopState
    ) -> list[Mapping[str, Any]]:
        """Keep the examples at the end of a list that fit the budget.

        Args:
            examples: ``{"block": text}`` examples in prompt order.
            state: The loop state (its history calibrates the token estimate).

        Returns:
            The kept examples, in prompt order.
        """
        ratio = self.budget.ratio(state.history)
        left = self.budget.limit(state.history) - self.budget.count(self.overhead(state), ratio)
        kept: list[Mapping[str, Any]] = []
        for ex in reversed(examples):
            cost = self.budget.count(str(ex["block"]) + self.separator, ratio)
            if cost > left:
                break
            left -= cost
            kept.append(ex)
        if len(kept) < len(examples):
            log.info("context: %d of %d examples fit the %d-token budget",
                     len(kept), len(examples), self.budget.limit(state.history))  # fmt: skip
        return kept[::-1]


class OverflowGuard:
    """A sampler that turns an endpoint's context-length refusal into ContextOverflowError.

    The loop then records a failed attempt (the run goes on) and :class:`TokenBudget`
    lowers the next prompts' budget.
    """

    def __init__(self, inner: Sampler) -> None:
        """Wrap a sampler.

        Args:
            inner: The sampler.
        """
        self.inner = inner

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Sample; re-raise a context-length refusal as :class:`ContextOverflowError`.

        Args:
            prompt: Text or chat messages.
            n: Number of completions.
            seed: Sampling seed.

        Returns:
            The inner sampler's batch.

        Raises:
            ContextOverflowError: The endpoint refused the prompt's length.
        """
        try:
            return self.inner.sample(prompt, n, seed)
        except (LLMBadRequestError, LLMUnavailableError) as exc:  # HTTP 400 (413, 422)
            if _OVERFLOW.search(str(exc)):
                raise ContextOverflowError(str(exc)) from exc
            raise
