"""Typed settings, one loader: flags, config files, method specs and ROS parameters alike.

Every setting of a run lives in a frozen dataclass with a docstring per field
(:class:`icpi.manipulation.config.RunConfig`, :class:`icpi.llm.config.LLMConfig`, the
methods' settings, ...). This module turns layers of plain data into such a dataclass and
back:

- :func:`load` merges layers (defaults < config file < flags) and validates the result
  with pydantic's :class:`~pydantic.TypeAdapter` (already a dependency of ``openai``): types
  are checked, strings from a method spec or a ROS parameter are coerced (``"10"`` → 10),
  unknown keys are refused, and every problem ends in one :class:`~icpi.errors.ConfigError`
  naming the setting.
- :func:`add_flags` registers a command-line flag per field (help from the field's
  docstring), and :func:`flag_layer` reads back only the flags the user gave.
- :func:`read_config_file` reads a YAML or TOML file (``--config FILE``).
- :func:`dump` gives the JSON data that ``config.json`` records.

A config class opts into the strict key check with ``__pydantic_config__ = STRICT`` (a
plain dict, so that importing a config class does not import pydantic).

Import cost, measured on the 2-core machine: this module imports no third-party code;
pydantic (~0.15 s over the interpreter's start) is imported on the first validation only.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import json
import re
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from icpi.core.secrets import is_secret_key, redact
from icpi.errors import ConfigError

T = TypeVar("T")

#: Pydantic configuration of every settings dataclass: unknown keys are an error.
STRICT: dict[str, Any] = {"extra": "forbid"}

#: Prefix of the argparse destinations that :func:`flag_layer` collects.
_DEST = "cfg:"


# ---------------------------------------------------------------------------- merge / load
def merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Deep-merge mappings; later layers win, ``None`` layers and ``None`` values are skipped.

    Args:
        *layers: Mappings from lowest to highest priority.

    Returns:
        The merged mapping (nested mappings merged key by key).
    """
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None:
                continue
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merge(out[key], value)
            elif isinstance(value, Mapping):
                out[key] = merge(value)
            else:
                out[key] = value
    return out


_ADAPTERS: dict[Any, Any] = {}


def _adapter(cls: Any) -> Any:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


def load(cls: type[T], *layers: Mapping[str, Any] | None, where: str = "") -> T:
    """Build a settings dataclass from layers of plain data.

    Args:
        cls: The dataclass.
        *layers: Mappings from lowest to highest priority (see :func:`merge`).
        where: Where the values come from, for the error message (e.g. ``config.yaml``).

    Returns:
        The validated instance.

    Raises:
        ConfigError: Naming each invalid or unknown setting.
    """
    from pydantic import ValidationError

    data = merge(*layers)
    src = f" in {where}" if where else ""
    wrong = _wrong_types(cls, data)
    if wrong:
        raise ConfigError(f"invalid settings{src}: " + "; ".join(wrong))
    try:
        result: T = _adapter(cls).validate_python(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or cls.__name__
            if e["type"] == "unexpected_keyword_argument":
                known = ", ".join(f.name for f in _fields_at(cls, e["loc"][:-1]))
                problems.append(f"unknown setting {key!r} (known: {known})")
            elif e["loc"] and is_secret_key(e["loc"][-1]):
                problems.append(f"{key}: {e['msg']}")  # never echo a credential
            else:
                problems.append(f"{key}: {e['msg']} (got {redact(e.get('input'))!r})")
        raise ConfigError(f"invalid settings{src}: " + "; ".join(problems)) from None
    except TypeError as err:  # data that is not a mapping
        raise ConfigError(f"invalid settings{src}: {err}") from None
    return result


class FileText(str):
    """A string read from a config file.

    YAML and TOML write numbers and booleans without quotes, so a quoted ``"5"`` where a
    number belongs is a mistake there (while a method spec's ``k=10`` is text by nature,
    and is converted).
    """


def _mark_text(data: Any) -> Any:
    """The data of a config file with every string marked as :class:`FileText`."""
    if isinstance(data, str):
        return FileText(data)
    if isinstance(data, dict):
        return {key: _mark_text(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_mark_text(value) for value in data]
    return data


def _wrong_types(cls: type, data: Any, where: str = "") -> list[str]:
    """Values that pydantic would convert but that are mistakes.

    ``true`` for a number; a quoted value from a config file (:class:`FileText`) for a
    number or a boolean.
    """
    if not isinstance(data, Mapping) or not dataclasses.is_dataclass(cls):
        return []
    hints = _hints(cls)
    out: list[str] = []
    for key, value in data.items():
        hint = _unwrap_optional(hints.get(str(key)))
        name = f"{where}{key}"
        inner = _dataclass_of(hint)
        if inner is not None:
            out += _wrong_types(inner, value, f"{name}.")
        elif hint in (int, float) and isinstance(value, bool):
            out.append(f"{name}: expected a number, got {str(value).lower()}")
        elif hint in (int, float, bool) and isinstance(value, FileText):
            kind = "true or false" if hint is bool else "a number"
            out.append(f"{name}: expected {kind}, got the text {str(value)!r} (drop the quotes)")
    return out


def dump(obj: Any) -> Any:
    """Plain JSON data of a settings dataclass (tuples as lists, paths as strings).

    Args:
        obj: A settings dataclass instance (or any value pydantic can dump).

    Returns:
        JSON-compatible data.
    """
    return _adapter(type(obj)).dump_python(obj, mode="json")


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted keys into nested mappings: ``{"a.b": 1}`` → ``{"a": {"b": 1}}``.

    Args:
        flat: Mapping with dotted keys.

    Returns:
        The nested mapping.
    """
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def leaf_names(cls: type, skip: Iterable[str] = ()) -> list[str]:
    """The dotted names of a dataclass's leaf fields (nested dataclasses flattened).

    Args:
        cls: The dataclass.
        skip: Dotted names to leave out (a nested dataclass's name skips all of it).

    Returns:
        E.g. ``["base_url", ..., "sampling.n", "sampling.temperature", ...]``.
    """
    skip = set(skip)
    out: list[str] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        inner = _dataclass_of(_unwrap_optional(hints[f.name]))
        if inner is None:
            out.append(f.name)
        else:
            prefix = f.name + "."
            sub = {s[len(prefix) :] for s in skip if s.startswith(prefix)}
            out += [prefix + n for n in leaf_names(inner, sub)]
    return out


def read_config_file(path: Path | str) -> dict[str, Any]:
    """Read a ``--config`` file: YAML (``.yaml``, ``.yml``) or TOML (``.toml``).

    Args:
        path: The file.

    Returns:
        Its top-level mapping (strings marked as :class:`FileText`, so that a quoted
        number is refused where a number belongs).

    Raises:
        ConfigError: If the file is missing, unreadable, not UTF-8, of another type or not
            a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at"
            f" offset {err.start}); save it as UTF-8"
        ) from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            raise ConfigError(f"config file {path}: use .yaml, .yml or .toml, not {suffix!r}")
    except ConfigError:
        raise
    except Exception as err:  # yaml.YAMLError, tomllib.TOMLDecodeError
        raise ConfigError(f"config file {path} does not parse: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping, got {type(data).__name__}")
    marked: dict[str, Any] = _mark_text(data)
    return marked


def read_verb_config(
    path: Path | str | None,
    *,
    run_keys_set_by_verb: Iterable[str] = (),
    llm_keys_set_by_verb: Iterable[str] = (),
    why: str = "",
    sections: Iterable[str] = ("run", "llm"),
) -> dict[str, Any]:
    """Read a verb's ``--config`` file: sections ``run`` and ``llm`` (and the verb's own).

    Keys the verb sets itself (a benchmark's ``run.seed``, a run's per-call ``llm`` seed)
    are refused rather than silently overridden or dropped.

    Args:
        path: The file; ``None``: no file (an empty mapping).
        run_keys_set_by_verb: ``run`` keys the file must not set.
        llm_keys_set_by_verb: ``llm`` sampling keys (e.g. ``seed``) the file must not set,
            flat or under ``sampling``.
        why: How the verb sets them, appended to the message.
        sections: The sections the verb reads (e.g. ``bench`` too).

    Returns:
        The file's mapping.

    Raises:
        ConfigError: On another section or a key the verb sets.
    """
    if path is None:
        return {}
    data = read_config_file(path)
    known = list(dict.fromkeys(["run", "llm", *sections]))
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown sections {sorted(unknown)} (this verb reads"
            f" {', '.join(known)})"
        )
    for name in known:
        if not isinstance(data.get(name) or {}, dict):
            raise ConfigError(f"config file {path}: section {name} must be a mapping")
    run, llm = data.get("run") or {}, data.get("llm") or {}
    sampling = llm.get("sampling") or {}
    llm_keys = set(llm) | (set(sampling) if isinstance(sampling, dict) else set())
    refused = [f"run.{k}" for k in sorted(set(run_keys_set_by_verb) & set(run))]
    refused += [f"llm.{k}" for k in sorted(set(llm_keys_set_by_verb) & llm_keys)]
    if refused:
        tail = f" ({why})" if why else ""
        raise ConfigError(
            f"config file {path}: {', '.join(refused)} is set by the command itself{tail};"
            " remove it"
        )
    return data


# ---------------------------------------------------------------------------- introspection
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields_at(cls: type, loc: Iterable[Any]) -> list[dataclasses.Field[Any]]:
    for part in loc:
        hint = _hints(cls).get(str(part))
        inner = _dataclass_of(hint)
        if inner is None:
            return []
        cls = inner
    return list(dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []


def _dataclass_of(hint: Any) -> type | None:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    return None


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string right below each field).

    Args:
        cls: The dataclass (inherited fields included).

    Returns:
        ``{field name: docstring folded to one line}``.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _default_text(f: dataclasses.Field[Any]) -> str | None:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return None  # no default: the help says nothing rather than "(default: required)"
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, default=str)


# ---------------------------------------------------------------------------- flags
def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    path: tuple[str, ...] = (),
    skip: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
    short: Mapping[str, str] | None = None,
) -> None:
    """Register one flag per leaf field of a dataclass (nested dataclasses are flattened).

    Unset flags leave no value behind (``argparse.SUPPRESS``), so :func:`flag_layer` sees
    only what the user gave and the lower layers (defaults, config file) keep the rest.

    Args:
        parser: Parser or argument group to extend.
        cls: The settings dataclass.
        path: Where ``cls`` sits in the loaded mapping (e.g. ``("llm", "sampling")``).
        skip: Dotted field paths (relative to ``cls``) to leave without a flag.
        rename: Flag name (without ``--``) per dotted field path, instead of the field name.
        short: Extra short option (e.g. ``-n``) per dotted field path.
    """
    skip = set(skip)
    rename = dict(rename or {})
    short = dict(short or {})
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or f.name in skip:
            continue
        hint = _unwrap_optional(hints[f.name])
        inner = _dataclass_of(hint)
        if inner is not None:
            prefix = f.name + "."
            add_flags(
                parser,
                inner,
                path=(*path, f.name),
                skip={s[len(prefix) :] for s in skip if s.startswith(prefix)},
                rename={k[len(prefix) :]: v for k, v in rename.items() if k.startswith(prefix)},
                short={k[len(prefix) :]: v for k, v in short.items() if k.startswith(prefix)},
            )
            continue
        add_field_flag(
            parser, cls, f.name, path=path, name=rename.get(f.name), short=short.get(f.name)
        )


def add_field_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    field_name: str,
    *,
    path: tuple[str, ...] = (),
    name: str | None = None,
    short: str | None = None,
    note: str = "",
    default: str | None = None,
) -> None:
    """Register the flag of one field of a settings dataclass (see :func:`add_flags`).

    Args:
        parser: Parser or argument group to extend.
        cls: The dataclass.
        field_name: The field.
        path: Where ``cls`` sits in the loaded mapping.
        name: Flag name without ``--``; default: the field name with dashes.
        short: Extra short option, e.g. ``-n``.
        note: Appended to the help text.
        default: How the default reads in the help; ``None``: the field's default.
    """
    f = next(x for x in dataclasses.fields(cls) if x.name == field_name)
    kwargs = _flag_kwargs(_unwrap_optional(_hints(cls)[field_name]))
    if kwargs is None:
        return
    opts = [f"--{name or field_name.replace('_', '-')}"] + ([short] if short else [])
    doc = plain_text(field_docs(cls).get(field_name, ""))
    shown = default or _default_text(f)
    text = f"{doc} (default: {shown}){note}" if shown is not None else f"{doc}{note}"
    parser.add_argument(
        *opts,
        dest=_DEST + ".".join((*path, field_name)),
        default=argparse.SUPPRESS,
        help=text.replace("%", "%%"),
        **kwargs,
    )


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain_text(doc: str) -> str:
    """A docstring without reST markup, for ``--help``.

    Args:
        doc: Text with ``literals`` and :role:`targets`.

    Returns:
        The text with the markup removed (a role's target by its last name).
    """
    doc = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], doc)
    return doc.replace("``", "")


def _flag_kwargs(hint: Any) -> dict[str, Any] | None:
    origin = typing.get_origin(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if hint in (int, float):
        return {"type": hint, "metavar": hint.__name__.upper()}
    if hint is str:
        return {"type": str, "metavar": "TEXT"}
    if hint is Path:
        return {"type": str, "metavar": "PATH"}
    if origin is typing.Literal:
        choices = list(typing.get_args(hint))
        return {"choices": choices, "type": type(choices[0])}
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float, str):
            if args[0] is str:
                return {"action": "append", "metavar": "TEXT"}
            return {"nargs": "+", "type": args[0], "metavar": args[0].__name__.upper()}
    return None


def flag_layer(args: argparse.Namespace) -> dict[str, Any]:
    """The nested mapping of the flags the user gave (see :func:`add_flags`).

    Args:
        args: Parsed arguments.

    Returns:
        E.g. ``{"run": {"settings": {"k": 10}}, "llm": {"sampling": {"stop": ["END"]}}}``.
    """
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if not dest.startswith(_DEST):
            continue
        *parents, leaf = dest[len(_DEST) :].split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """Register ``--config FILE`` (YAML or TOML; flags override what it sets).

    Args:
        parser: The verb's parser.
    """
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML or TOML file of settings (the same keys as config.json records); flags"
        " given on the command line override it.",
    )


__all__ = [
    "STRICT",
    "FileText",
    "add_config_flag",
    "add_field_flag",
    "add_flags",
    "dump",
    "field_docs",
    "flag_layer",
    "leaf_names",
    "load",
    "merge",
    "nest",
    "plain_text",
    "read_config_file",
    "read_verb_config",
]
