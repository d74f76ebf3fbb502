"""The registry of language methods: one module per method (or family), found on first use."""

from __future__ import annotations

from typing import Any

from icpi.core.registry import Registry
from icpi.language.methods.base import LangMethod

_REGISTRY: Registry[LangMethod[Any]] = Registry(
    LangMethod,
    "icpi.language.methods",
    "language method",
    order=("icrl", "best_of_n", "self_refine", "reflexion", "cot", "me_icpo"),
    skip=("attempts", "base", "registry"),
)
#: Method id -> class: ICRL Preset and Autonomous, Best-of-N, Self-Refine, Reflexion,
#: CoT-only, Long-CoT, ME-ICPO, then methods of other modules by module name (what
#: ``--method`` accepts; filled by :func:`load_methods`).
METHODS = _REGISTRY.entries
register = _REGISTRY.register
load_methods = _REGISTRY.load
get_method = _REGISTRY.get
