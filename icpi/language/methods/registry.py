"""The registry of language methods: one module per method (or family), found on first use."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, TypeVar

from icpi.errors import ConfigError
from icpi.language.methods.base import LangMethod

T = TypeVar("T", bound=type[LangMethod[Any]])

#: Method id -> class, in the order of :data:`_ORDER` (what ``--method`` accepts).
METHODS: dict[str, type[LangMethod[Any]]] = {}
_ORDER = ("icrl", "best_of_n", "self_refine", "reflexion", "cot", "me_icpo")
_NOT_METHODS = ("attempts", "base", "registry")
_LOADED = False


def register(cls: T) -> T:
    """Class decorator: add a method to :data:`METHODS` under its ``name``.

    Args:
        cls: The method class.

    Returns:
        The class, unchanged.

    Raises:
        ValueError: If another class already has that name.
    """
    other = METHODS.get(cls.name)
    if other is not None and other is not cls:
        raise ValueError(f"method {cls.name!r} is registered twice ({other} and {cls})")
    METHODS[cls.name] = cls
    return cls


def load_methods() -> dict[str, type[LangMethod[Any]]]:
    """Import every method module of this package (once) and return the registry.

    Returns:
        :data:`METHODS`: ICRL Preset and Autonomous, Best-of-N, Self-Refine, Reflexion,
        CoT-only, Long-CoT, ME-ICPO, then methods of other modules by module name.
    """
    global _LOADED
    if not _LOADED:
        package = importlib.import_module("icpi.language.methods")
        names = [
            m.name
            for m in pkgutil.iter_modules(package.__path__)
            if not m.name.startswith("_") and m.name not in _NOT_METHODS
        ]
        for name in sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else 99, n)):
            importlib.import_module(f"icpi.language.methods.{name}")

        def rank(item: tuple[int, type[LangMethod[Any]]]) -> tuple[int, str, int]:
            module = item[1].__module__.rsplit(".", 1)[-1]
            return (_ORDER.index(module) if module in _ORDER else 99, module, item[0])

        ordered = [(c.name, c) for _, c in sorted(enumerate(METHODS.values()), key=rank)]
        METHODS.clear()
        METHODS.update(ordered)
        _LOADED = True
    return METHODS


def get_method(name: str) -> type[LangMethod[Any]]:
    """The method class of an id.

    Args:
        name: Method id.

    Returns:
        The class.

    Raises:
        ConfigError: If no method has that id (the message lists them).
    """
    methods = load_methods()
    if name not in methods:
        raise ConfigError(f"unknown language method {name!r}; choose one of {', '.join(methods)}")
    return methods[name]
