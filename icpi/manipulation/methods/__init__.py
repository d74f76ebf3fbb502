"""The improvement methods, one class per module, found by a registry.

Every module of this package that defines a :class:`~icpi.manipulation.methods.base.Method`
subclass decorated with :func:`register` adds it to :data:`METHODS`; the package imports
its modules on first use, so a new method is one new file. The CLI, the benchmark, the ROS
driver and the README's method table all read :data:`METHODS` (``python -m
icpi.manipulation.methods`` prints that table).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, TypeVar

from icpi.errors import ConfigError
from icpi.manipulation.methods.base import (
    Box,
    Method,
    MethodContext,
    MethodSettings,
    drive,
)

M = TypeVar("M", bound=type[Method[Any]])

#: Method id -> class, in registration order (what ``--method`` accepts).
METHODS: dict[str, type[Method[Any]]] = {}
_LOADED = False


def register(cls: M) -> M:
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


#: Modules imported first, in the order of the README's table; the rest follow by name.
_ORDER = ("icpi", "icpi_plus", "random_shooting", "bayesian", "knn", "jacobian", "cma_es")


def load_methods() -> dict[str, type[Method[Any]]]:
    """Import every method module of this package (once) and return the registry.

    Returns:
        :data:`METHODS`.
    """
    global _LOADED
    if not _LOADED:
        names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
        rank = {n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n) for n in names}
        for name in sorted(names, key=rank.__getitem__):
            importlib.import_module(f"{__name__}.{name}")
        ordered = sorted(
            enumerate(METHODS.values()),
            key=lambda ic: (rank.get(ic[1].__module__.rsplit(".", 1)[-1], (99, "")), ic[0]),
        )
        registered = {cls.name: cls for _, cls in ordered}
        METHODS.clear()
        METHODS.update(registered)
        _LOADED = True
    return METHODS


def get_method(name: str) -> type[Method[Any]]:
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
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(methods)}")
    return methods[name]


def method_table() -> str:
    """The README's method table (Markdown), generated from the registry.

    Returns:
        ``| id | method |`` rows, one per registered method.
    """
    rows = ["| id | method |", "|---|---|"]
    rows += [f"| `{name}` | {cls.summary} |" for name, cls in load_methods().items()]
    return "\n".join(rows) + "\n"


__all__ = [
    "METHODS",
    "Box",
    "Method",
    "MethodContext",
    "MethodSettings",
    "drive",
    "get_method",
    "load_methods",
    "method_table",
    "register",
]
