"""The registry behind the manipulation methods, the language methods and tasks."""

from __future__ import annotations

import pytest

from icpi.core.registry import Registry
from icpi.errors import ConfigError
from icpi.language.methods import METHODS as LANG_METHODS
from icpi.language.methods import get_method as get_lang_method
from icpi.language.tasks import get_task
from icpi.manipulation.methods import get_method, load_methods


class Base:
    name = "base"


def _registry() -> Registry[Base]:
    # A package with modules but no registrations: load() imports them and adds nothing.
    return Registry(Base, "icpi.core", "widget", skip=("toy",))


def test_register_get_and_the_errors_a_user_sees() -> None:
    reg = _registry()

    @reg.register
    class Spoke(Base):
        name = "spoke"

    assert reg.get("spoke") is Spoke
    with pytest.raises(ConfigError, match=r"unknown widget 'rim'; choose one of spoke"):
        reg.get("rim")
    with pytest.raises(ValueError, match="'spoke' is registered twice"):

        @reg.register
        class Other(Base):
            name = "spoke"

    with pytest.raises(TypeError, match="is not a Base"):
        reg.register(int)
    assert reg.register(Spoke) is Spoke  # registering the same class again is harmless


def test_the_three_registries_keep_their_documented_order() -> None:
    assert list(load_methods())[:8] == [
        "icpi", "icpi+", "random", "bo", "knn5", "lknn20", "jacobian", "cmaes",
    ]  # fmt: skip
    assert get_lang_method("icrl-preset").name == "icrl-preset"
    assert list(LANG_METHODS) == [
        "icrl-preset", "icrl-autonomous", "best-of-n", "self-refine", "reflexion",
        "cot-only", "long-cot", "me-icpo",
    ]  # fmt: skip
    assert get_task("game24").name == "game24"
    with pytest.raises(ConfigError, match="unknown method 'nope'; choose one of icpi, icpi\\+"):
        get_method("nope")
    with pytest.raises(ConfigError, match="unknown language task 'nope'; choose one of game24"):
        get_task("nope")
