"""The language methods, one class each, found by a registry (:func:`load_methods`).

ICRL prompting (:mod:`~icpi.language.methods.icrl`: Preset, Autonomous, ablations), the
baselines Best-of-N, Self-Refine, Reflexion, CoT-only and Long-CoT, and ME-ICPO
(:mod:`~icpi.language.methods.me_icpo`). Each has its own settings dataclass; a new method
is one new module defining a :class:`LangMethod` subclass decorated with :func:`register`.
"""

from __future__ import annotations

from icpi.language.methods.base import (
    ExpertOptions,
    ExpertSettings,
    LangContext,
    LangMethod,
    LangMethodSettings,
    ResponseParser,
)
from icpi.language.methods.registry import METHODS, get_method, load_methods, register

__all__ = [
    "METHODS",
    "ExpertOptions",
    "ExpertSettings",
    "LangContext",
    "LangMethod",
    "LangMethodSettings",
    "ResponseParser",
    "get_method",
    "load_methods",
    "register",
]
