"""The language methods, one class each, found by a registry (:func:`load_methods`).

ICRL prompting (:mod:`~icpi.language.methods.icrl`: Preset, Autonomous, ablations), the
baselines Best-of-N, Self-Refine, Reflexion, CoT-only and Long-CoT, and ME-ICPO
(:mod:`~icpi.language.methods.me_icpo`). Each has its own settings dataclass; a new method
is one new module defining a :class:`LangMethod` subclass decorated with :func:`register`.
"""

from __future__ import annotations

from typing import Any

from icpi.core import ExperienceBuffer, ImprovementLoop
from icpi.language.metering import RoundUsage
from icpi.language.methods.base import (
    ExpertOptions,
    ExpertSettings,
    LangContext,
    LangMethod,
    LangMethodSettings,
    ResponseParser,
)
from icpi.language.methods.registry import METHODS, get_method, load_methods, register
from icpi.language.tasks.base import Problem


def build_loop(
    method: str,
    ctx: LangContext,
    problem: Problem,
    settings: LangMethodSettings | None = None,
    *,
    buffer: ExperienceBuffer | None = None,
    seed: int = 0,
) -> tuple[ImprovementLoop, RoundUsage, LangMethod[Any]]:
    """Build a method by id and assemble its loop on one problem.

    Args:
        method: Method id.
        ctx: Task, samplers, budget, prompts.
        problem: The problem.
        settings: The method's settings (``None``: its defaults).
        buffer: The problem's experience buffer.
        seed: Seed of the problem's calls.

    Returns:
        The loop, its reward wrapper and the method.
    """
    m = get_method(method)(ctx, settings)
    loop, usage = m.build(problem, buffer=buffer, seed=seed)
    return loop, usage, m


def method_table() -> str:
    """The README's table of language methods (Markdown), generated from the registry.

    Returns:
        ``| id | method |`` rows.
    """
    rows = ["| id | method |", "|---|---|"]
    rows += [f"| `{name}` | {cls.summary} |" for name, cls in load_methods().items()]
    return "\n".join(rows) + "\n"


__all__ = [
    "METHODS",
    "ExpertOptions",
    "ExpertSettings",
    "LangContext",
    "LangMethod",
    "LangMethodSettings",
    "ResponseParser",
    "build_loop",
    "get_method",
    "load_methods",
    "method_table",
    "register",
]
