"""The configuration of a manipulation run: one typed dataclass, every front end.

:class:`RunConfig` holds every setting of a run: the task, the method and its settings (the
method's own :attr:`~icpi.manipulation.methods.base.Method.Settings` dataclass), the seed,
the budget, θ0 and the dataset. It is loaded, through :func:`load_run_config`, from the
flags of ``icpi run`` / ``icpi bench`` (:func:`add_run_flags`), a ``--config`` YAML/TOML
file, the Python API, the Optuna sampler and the ROS parameters of the arm driver alike;
what ``config.json`` records is :func:`dump_run_config` of the resolved value.

A method is named everywhere by one grammar, the method spec ``id[key=value;...]``
(:func:`parse_method_spec`): ``icpi``, ``icpi[k=10;feature=raw]``, ``icpi+[model=off]``. Its
keys are the fields of the method's settings dataclass (found by introspection, so a
setting a method adds is a spec key at once), of :class:`RunConfig` (``dataset_size``) and
the model's (``model``, ``temperature``). :func:`expand_method_spec` turns a layer whose
``method`` is a spec into plain run and LLM layers; :data:`DEFAULT_METHOD` is the method of
every front end that is given none.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from icpi.config import STRICT, add_field_flag, add_flags, dump, load, merge
from icpi.errors import ConfigError
from icpi.manipulation.methods import get_method, load_methods
from icpi.manipulation.methods.base import MethodSettings

#: The method of every front end given none (``icpi run``, config files, ``api.improve``,
#: ``ICPISampler``, the arm driver; ``icpi bench`` runs it beside its reference baseline).
#: ``icpi+``: the lowest mean final cost on four of five tasks against lknn20 and jacobian
#: with the same final re-run (``benchmarks/RESULTS.md``); it ends on the best θ it found,
#: and its arbiter lets a right model win rollouts and a wrong one lose them.
DEFAULT_METHOD = "icpi+"


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one improvement run (``config.json`` records it under ``run``)."""

    __pydantic_config__ = STRICT

    task: str
    """Task: a shipped id (``slide``, ``slide-gc``, ``rope-swing``, ``rope-swing-gc``,
    ``ball-roll-gc``), or your own task as ``module:Class`` or ``path/file.py:Class``."""
    method: str = DEFAULT_METHOD
    """Method spec: a method id, optionally with settings, e.g. ``icpi+``,
    ``icpi+[model=off]``, ``icpi[k=10;feature=raw]`` (ids: the README's table)."""
    seed: int = 0
    """Seed of the task instance (as ``env.reset(seed=...)``), of the method's draws and of
    every model call."""
    iterations: int = 20
    """Rollouts in total, θ0 included."""
    theta0: Literal["center", "random"] = "center"
    """Initial θ: the centre of the θ box, or uniform at random (seeded)."""
    dataset: str | None = None
    """Dataset directory; unset: the shipped dataset of the task."""
    dataset_size: int | None = None
    """Use a seeded subset of this many examples (the paper's dataset-size ablation)."""
    settings: MethodSettings = dataclasses.field(default_factory=MethodSettings)
    """The method's settings (its own dataclass; see :func:`load_run_config`)."""

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.dataset_size is not None and self.dataset_size < 1:
            raise ValueError(f"dataset_size must be >= 1, got {self.dataset_size}")


_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig)) - {"settings"}


def load_run_config(*layers: Mapping[str, Any] | None, where: str = "") -> RunConfig:
    """Resolve a run configuration from layers (defaults < file < flags).

    A layer's ``method`` may be a method spec (see :func:`expand_method_spec`). The method
    named by the merged layers decides which settings are valid: they are validated
    against its own settings dataclass, and a setting of another method is refused with
    the list of those it has.

    Args:
        *layers: Mappings with :class:`RunConfig` keys (``settings`` a sub-mapping).
        where: Where the values come from, for messages.

    Returns:
        The configuration, ``settings`` an instance of the method's settings class.

    Raises:
        ConfigError: On an unknown method or setting, an invalid value, or model settings
            in a spec (front ends with a model configuration expand the spec first, with
            :func:`expand_method_spec`).
    """
    expanded = []
    for layer in layers:
        run, llm = expand_method_spec(layer, where=where)
        if llm:
            raise ConfigError(
                f"model settings {sorted(llm)} in the method spec {(layer or {}).get('method')!r}"
                f"{_in(where)} have no model configuration to go to here; set them in the LLM"
                " settings"
            )
        expanded.append(run)
    data = merge(*expanded)
    method = get_method(str(data.get("method", DEFAULT_METHOD)))
    settings = load(method.Settings, data.get("settings"), where=f"method {method.name}")
    base = load(RunConfig, {k: v for k, v in data.items() if k != "settings"}, where=where)
    return dataclasses.replace(base, settings=settings)


def dump_run_config(cfg: RunConfig) -> dict[str, Any]:
    """The JSON data of a run configuration (what ``config.json`` records under ``run``).

    Args:
        cfg: The configuration.

    Returns:
        Its fields, ``settings`` those of the method's settings class.
    """
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "settings"}
    return {**dump_plain(out), "settings": dump(cfg.settings)}


def dump_plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON data of a mapping of simple values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


# ---------------------------------------------------------------------------- flags
def add_run_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Register the flags of :class:`RunConfig` and of every method's settings.

    A method's setting flag (``--k``, ``--xi``, ...) applies to the methods that have that
    setting; given with another method it is refused by :func:`load_run_config`.

    Args:
        parser: The verb's parser.
        skip: :class:`RunConfig` fields the verb sets itself (e.g. ``seed`` in a bench).
    """
    g = parser.add_argument_group("run")
    add_flags(g, RunConfig, path=("run",), skip={"settings", *skip})
    m = parser.add_argument_group("method settings (each applies to the methods listed)")
    owners: dict[str, dict[str, str]] = {}  # field -> method -> its default
    first: dict[str, type] = {}
    for name, cls in load_methods().items():
        for f in dataclasses.fields(cls.Settings):
            owners.setdefault(f.name, {})[name] = _default_of(f)
            first.setdefault(f.name, cls.Settings)
    for fname, settings_cls in first.items():
        defaults = owners[fname]
        if len(set(defaults.values())) == 1:
            default = next(iter(defaults.values()))
        else:
            default = "; ".join(f"{v} for {k}" for k, v in defaults.items())
        add_field_flag(
            m,
            settings_cls,
            fname,
            path=("run", "settings"),
            # A setting named like an LLM flag (icpi+'s model on/off) gets a prefix.
            name=f"method-{fname.replace('_', '-')}" if fname in _LLM_SPEC_KEYS else None,
            short="-n" if fname == "n_samples" else None,
            note=f" [{', '.join(defaults)}]",
            default=default,
        )


def _default_of(f: dataclasses.Field[Any]) -> str:
    value = f.default
    if value is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def parameter_names() -> list[str]:
    """Dotted names of every run setting (RunConfig fields, every method's settings).

    Returns:
        E.g. ``["task", "method", ..., "settings.k", "settings.xi", ...]`` (the ROS driver
        declares them as ``run.<name>``).
    """
    names = [f.name for f in dataclasses.fields(RunConfig) if f.name != "settings"]
    settings = {f.name for cls in load_methods().values() for f in dataclasses.fields(cls.Settings)}
    return names + [f"settings.{n}" for n in sorted(settings)]


# ---------------------------------------------------------------------------- method specs
@dataclass(frozen=True)
class MethodSpec:
    """A method spec: ``method[key=value;...]``, e.g. ``icpi[k=10;feature=raw]``."""

    label: str
    """The spec as written (its label in tables and directory names)."""
    method: str
    """Method id."""
    run: Mapping[str, Any]
    """Run-level overrides (``dataset_size``, ``theta0``, ``dataset``)."""
    settings: Mapping[str, Any]
    """The method's settings (strings, coerced by :func:`load_run_config`)."""
    llm: Mapping[str, Any]
    """LLM overrides (``model``, sampling fields such as ``temperature``)."""

    @property
    def uses_model(self) -> bool:
        """Whether runs of this method query a language model."""
        method = get_method(self.method)
        return method.needs_model(load(method.Settings, self.settings, where=self.label))

    @property
    def slug(self) -> str:
        """File-system-safe name."""
        return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", self.label).strip("_")

    def layer(self) -> dict[str, Any]:
        """The run-config layer of this spec (method, run overrides, settings)."""
        return {"method": self.method, **self.run, "settings": dict(self.settings)}


#: Spec keys that go to the model's settings (unless the method has a setting of that name,
#: like ``icpi+``'s ``model`` switch).
_LLM_SPEC_KEYS = frozenset({"model", "temperature", "top_p", "max_tokens", "mode"})


def parse_method_spec(spec: str) -> MethodSpec:
    """Parse ``method[key=value;...]`` (values are coerced when the config is loaded).

    A key that names a setting of the method goes to its settings (``icpi+[model=off]``;
    the keys are read from the method's settings dataclass), one that names a
    :class:`RunConfig` field to the run, ``model`` and the sampling fields to the LLM
    settings (``icpi[model=gpt-4o]``), and any other key to the settings, where validation
    refuses it with the list of valid ones. Dashes in keys read as underscores.

    Args:
        spec: The spec.

    Returns:
        The parsed spec.

    Raises:
        ConfigError: On an unknown method or a malformed setting.
    """
    m = re.fullmatch(r"([A-Za-z0-9+_-]+)(?:\[(.*)\])?", spec.strip())
    if m is None:
        raise ConfigError(
            f"bad method spec {spec!r}; write a method id with optional settings, e.g. icpi,"
            " icpi+[model=off] or icpi[k=10;feature=raw]"
        )
    cls = get_method(m.group(1))
    method = cls.name
    own = {f.name for f in dataclasses.fields(cls.Settings)}
    run: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    llm: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in (m.group(2) or "").split(";"))):
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"bad setting {part!r} in {spec!r}; use key=value")
        if key in own or (key not in _RUN_FIELDS and key not in _LLM_SPEC_KEYS):
            target = settings
        else:
            target = run if key in _RUN_FIELDS else llm
        if key in target:
            raise ConfigError(f"{key} is set twice in the method spec {spec!r}")
        target[key] = value.strip()
    if "method" in run or "task" in run:
        raise ConfigError(f"a method spec sets settings, not the task or method: {spec!r}")
    return MethodSpec(spec.strip(), method, run, settings, llm)


def _in(where: str) -> str:
    return f" in {where}" if where else ""


def expand_method_spec(
    run: Mapping[str, Any] | None, llm: Mapping[str, Any] | None = None, where: str = ""
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Expand the method spec of one layer of settings into plain run and LLM layers.

    ``{"method": "icpi[k=10;temperature=0.2]"}`` becomes the run layer ``{"method": "icpi",
    "settings": {"k": "10"}}`` and the LLM layer ``{"temperature": "0.2"}``, so a spec given
    in a config file sits below the flags and one given as a flag above the file. A value
    set both in the spec and beside it in the same layer (``--method icpi[k=10] --k 5``) is
    refused: the two would silently disagree.

    Args:
        run: A run layer (``method``, other :class:`RunConfig` keys, ``settings``); ``None``
            or one without ``method`` passes through.
        llm: The LLM layer of the same source (flat or nested sampling keys).
        where: Where the layer comes from, for messages.

    Returns:
        ``(run layer, LLM layer)``, the spec's values merged in.

    Raises:
        ConfigError: On a malformed spec or a value set twice.
    """
    out = dict(run or {})
    model = dict(llm or {})
    text = out.get("method")
    if text is None:
        return out, model
    spec = parse_method_spec(str(text))
    settings = dict(out.get("settings") or {})
    sampling = model.get("sampling") or {}
    twice = [f"settings.{k}" for k in spec.settings if k in settings]
    twice += [k for k in spec.run if out.get(k) is not None]
    twice += [f"llm.{k}" for k in spec.llm if k in model or k in sampling]
    if twice:
        raise ConfigError(
            f"{', '.join(twice)} set twice{_in(where)}: in the method spec {spec.label!r} and"
            " beside it; keep one"
        )
    out.update(spec.run)
    out["method"] = spec.method
    if settings or spec.settings:
        out["settings"] = {**settings, **spec.settings}
    model.update(spec.llm)
    return out, model


__all__ = [
    "DEFAULT_METHOD",
    "MethodSpec",
    "RunConfig",
    "add_run_flags",
    "dump_run_config",
    "expand_method_spec",
    "load_run_config",
    "parameter_names",
    "parse_method_spec",
]
