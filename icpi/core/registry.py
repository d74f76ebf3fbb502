"""A registry of classes by id, filled by a decorator and found by importing a package.

The manipulation methods, the language methods and the language tasks each keep one: a
new method or task is one new module of its package whose class is decorated with the
registry's :meth:`Registry.register`; :meth:`Registry.load` imports the package's modules
on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import Generic, TypeVar, cast

from icpi.errors import ConfigError

C = TypeVar("C")
T = TypeVar("T", bound=type)


class Registry(Generic[C]):
    """Classes by their ``name`` attribute, in the order of their modules.

    Args:
        base: The class every entry subclasses (``C``, which may be abstract).
        package: The package whose modules register entries (imported by :meth:`load`).
        kind: What an entry is, for messages (e.g. ``"language task"``).
        order: Module names imported and listed first, in this order; the others follow
            by module name. Within a module, entries keep their registration order.
        skip: Module names that register nothing (not imported by :meth:`load`).
    """

    def __init__(
        self,
        base: type,
        package: str,
        kind: str,
        order: Sequence[str] = (),
        skip: Sequence[str] = (),
    ) -> None:
        self.base = base
        self.package = package
        self.kind = kind
        self.order = tuple(order)
        self.skip = tuple(skip)
        #: Id -> class (the same dict throughout: modules export it).
        self.entries: dict[str, type[C]] = {}
        self._loaded = False

    def register(self, cls: T) -> T:
        """Class decorator: add a class under its ``name``.

        Args:
            cls: The class.

        Returns:
            The class, unchanged.

        Raises:
            TypeError: If it does not subclass the registry's base.
            ValueError: If another class already has that name.
        """
        if not issubclass(cls, self.base):
            raise TypeError(f"{cls} is not a {self.base.__name__}; it cannot be a {self.kind}")
        name = getattr(cls, "name")  # noqa: B009 (every entry's base declares it)
        other = self.entries.get(name)
        if other is not None and other is not cls:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({other} and {cls})")
        self.entries[name] = cast("type[C]", cls)
        return cls

    def _rank(self, module: str) -> tuple[int, str]:
        return (self.order.index(module) if module in self.order else len(self.order), module)

    def load(self) -> dict[str, type[C]]:
        """Import every module of the package (once) and return the entries, in order.

        Returns:
            :attr:`entries`.
        """
        if not self._loaded:
            package = importlib.import_module(self.package)
            names = [
                m.name
                for m in pkgutil.iter_modules(package.__path__)
                if not m.name.startswith("_") and m.name not in self.skip
            ]
            for name in sorted(names, key=self._rank):
                importlib.import_module(f"{self.package}.{name}")
            ordered = sorted(
                enumerate(self.entries.values()),
                key=lambda ic: (self._rank(ic[1].__module__.rsplit(".", 1)[-1]), ic[0]),
            )
            registered = {getattr(cls, "name"): cls for _, cls in ordered}  # noqa: B009
            self.entries.clear()
            self.entries.update(registered)
            self._loaded = True
        return self.entries

    def get(self, name: str) -> type[C]:
        """The class of an id.

        Args:
            name: The id.

        Returns:
            The class.

        Raises:
            ConfigError: If no class has that id (the message lists them).
        """
        entries = self.load()
        if name not in entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {', '.join(entries)}")
        return entries[name]
