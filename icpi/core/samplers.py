"""Samplers: draw ``n`` candidate completions for a prompt.

:class:`LLMSampler` wraps anything with the :class:`TextGenerator` interface (the
:class:`icpi.llm.LLMClient`); :class:`ScriptedSampler` replays scripted answers and serves
as the LLM double of tests and dry runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from icpi.core.prompts import Prompt


@dataclass
class SampleBatch:
    """Completions drawn for one prompt, with accounting."""

    texts: list[str]
    """The completions."""
    prompt_tokens: int = 0
    """Prompt tokens reported by the model."""
    completion_tokens: int = 0
    """Completion tokens reported by the model."""
    latency_s: float = 0.0
    """Wall time of the call(s), seconds."""
    cached: bool = False
    """Whether every completion came from the cache."""
    calls: int = 1
    """Model calls made (cache hits included)."""
    keys: list[str] = field(default_factory=list)
    """Cache keys of the requests (for tracing a run back to its completions)."""


class Sampler(Protocol):
    """Draws candidate completions."""

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Return ``n`` completions of ``prompt``.

        Args:
            prompt: Text (completion mode) or chat messages.
            n: Number of completions.
            seed: Sampling seed (derived per iteration by the loop).

        Returns:
            The batch.
        """
        ...


class GenerationLike(Protocol):
    """The fields of :class:`icpi.llm.LLMResponse` a sampler reads (read-only)."""

    @property
    def texts(self) -> list[str]:
        """Completions."""
        ...

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens."""
        ...

    @property
    def completion_tokens(self) -> int:
        """Completion tokens."""
        ...

    @property
    def latency_s(self) -> float:
        """Wall time, seconds."""
        ...

    @property
    def cached(self) -> bool:
        """Whether it came from the cache."""
        ...

    @property
    def key(self) -> str:
        """Cache key."""
        ...


class TextGenerator(Protocol):
    """Anything that answers prompts like :meth:`icpi.llm.LLMClient.generate`."""

    def generate(self, prompt: Prompt, **params: Any) -> GenerationLike:
        """Return completions for a prompt.

        Args:
            prompt: Text or chat messages.
            **params: Sampling parameters (``n``, ``seed``, ``temperature``, ...).

        Returns:
            The generation.
        """
        ...


class LLMSampler:
    """Sample from a language model client with fixed sampling parameters."""

    def __init__(
        self, client: TextGenerator, *, resample_temperature: float | None = None, **params: Any
    ) -> None:
        """Create the sampler.

        Args:
            client: The model client (e.g. :class:`icpi.llm.LLMClient`).
            resample_temperature: Temperature of a call that repeats the previous call's
                prompt (the loop's re-sample after invalid answers): a greedy model would
                only repeat itself. ``None``: the same parameters as every call.
            **params: Sampling parameters for every call (``temperature``, ``max_tokens``,
                ``stop``, ``top_p``); ``n`` and ``seed`` come from the loop.
        """
        self.client = client
        self.params = params
        self.resample_temperature = resample_temperature
        self._last_prompt: Prompt | None = None

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Draw ``n`` completions in one call.

        Args:
            prompt: Text or chat messages.
            n: Number of completions.
            seed: Sampling seed.

        Returns:
            The batch.
        """
        params = dict(self.params)
        if self.resample_temperature is not None and prompt == self._last_prompt:
            params["temperature"] = self.resample_temperature
        self._last_prompt = prompt
        resp = self.client.generate(prompt, n=n, seed=seed, **params)
        return SampleBatch(
            texts=list(resp.texts),
            prompt_tokens=resp.prompt_tokens,
            completion_tokens=resp.completion_tokens,
            latency_s=resp.latency_s,
            cached=resp.cached,
            keys=[resp.key],
        )


Script = Sequence[str] | Callable[[Prompt, int, int | None], Sequence[str]]


def copy_nearest_example(prompt: Prompt, n: int, seed: int | None) -> list[str]:
    """A pattern-completing model double: repeat the answer of the last example line.

    Prompts of ``x -> y`` lines ordered farthest first (ICPI, the toy task) end with the
    nearest example, so this answers like a nearest-neighbour model (KNN-1). It is the one
    double of tests and of model-free dry runs (e.g. the arm driver's ``dry_run``); use it
    through ``ScriptedSampler(copy_nearest_example)``.

    Args:
        prompt: The rendered prompt (text or chat messages).
        n: Number of answers.
        seed: Unused.

    Returns:
        ``n`` copies of the numbers after the last ``->`` that has any (``"?"`` if none).
    """
    from icpi.core.parsing import find_numbers

    lines = [ln for ln in str(prompt).splitlines() if "->" in ln and ln.split("->")[1].strip()]
    answer = " " + " ".join(find_numbers(lines[-1].split("->")[1])) if lines else "?"
    return [answer] * n


class ScriptedSampler:
    """Replays scripted answers: the LLM double of tests and dry runs.

    Either a list of answers, consumed in order and cycled, or a callable
    ``(prompt, n, seed) -> answers``. Every call is recorded in :attr:`calls`.
    """

    def __init__(self, script: Script, *, delay_s: float = 0.0) -> None:
        """Create the double.

        Args:
            script: Answers or a function producing them.
            delay_s: Simulated latency per call, seconds.

        Raises:
            ValueError: If the answer list is empty.
        """
        if not callable(script) and not script:
            raise ValueError("a scripted sampler needs at least one answer")
        self.script = script
        self.delay_s = delay_s
        self.calls: list[tuple[Prompt, int, int | None]] = []
        self._pos = 0

    def _next(self, n: int) -> Iterable[str]:
        assert not callable(self.script)
        for _ in range(n):
            yield self.script[self._pos % len(self.script)]
            self._pos += 1

    def sample(self, prompt: Prompt, n: int, seed: int | None) -> SampleBatch:
        """Return the next ``n`` scripted answers.

        Args:
            prompt: Recorded, passed to a callable script.
            n: Number of answers.
            seed: Recorded, passed to a callable script.

        Returns:
            The batch (token counts are whitespace word counts).
        """
        t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        self.calls.append((prompt, n, seed))
        texts = list(self.script(prompt, n, seed) if callable(self.script) else self._next(n))
        words = len(str(prompt).split())
        return SampleBatch(
            texts=texts,
            prompt_tokens=words,
            completion_tokens=sum(len(t.split()) for t in texts),
            latency_s=time.perf_counter() - t0,
        )
