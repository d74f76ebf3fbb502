"""The improvement methods, one class per module, found by a registry.

Every module of this package that defines a :class:`~icpi.manipulation.methods.base.Method`
subclass decorated with :func:`register` adds it to :data:`METHODS`; the package imports
its modules on first use, so a new method is one new file. The CLI, the benchmark, the ROS
driver and the README's method table all read :data:`METHODS` (``python -m
icpi.manipulation.methods`` prints that table).
"""

from __future__ import annotations

from typing import Any

from icpi.core.registry import Registry
from icpi.manipulation.methods.base import (
    Box,
    Method,
    MethodContext,
    MethodSettings,
    drive,
)

_REGISTRY: Registry[Method[Any]] = Registry(
    Method,
    __name__,
    "method",
    # The order of the README's table; the rest follow by module name.
    order=("icpi", "icpi_plus", "random_shooting", "bayesian", "knn", "jacobian", "cma_es"),
    skip=("base",),
)
#: Method id -> class, in the order of the modules (what ``--method`` accepts; filled by
#: :func:`load_methods`).
METHODS = _REGISTRY.entries
register = _REGISTRY.register
load_methods = _REGISTRY.load
get_method = _REGISTRY.get


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
