"""The configuration of a language run: run-level fields, the task's and the method's settings.

:class:`LangConfig` holds what every language run has (task, method, problems, rounds,
seed, sampling, prompt budget, prompt set); the task's own settings
(:attr:`LangConfig.task_settings`, e.g. Game of 24's judges and split) and the method's
(:attr:`LangConfig.settings`, e.g. ME-ICPO's ``k``) are those classes' dataclasses, so a
setting that does not apply to the chosen task or method is refused by name.

:func:`load_lang_config` resolves layers (defaults < file < flags) in which a task or
method setting may also be given flat (``{"method": "me-icpo", "k": 4}``), as the flags
and the Python API give them; :func:`dump_lang_config` is what ``config.json`` records
under ``run``. ``config.json`` of a language run has format :data:`LANG_CONFIG_FORMAT`;
:func:`migrate_config` reads the flat format 2 of icpi 0.3 and earlier.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icpi.config import STRICT, dump, load, merge
from icpi.errors import ConfigError, RunDirError
from icpi.language.methods import LangMethodSettings, get_method, load_methods
from icpi.language.prompts import PromptSetName
from icpi.language.tasks import TaskSettings, get_task, load_tasks

#: Format of a language run's ``config.json`` (3: task and method settings nested, icpi
#: 0.4; 2: one flat ``run`` mapping).
LANG_CONFIG_FORMAT = 3
#: Problems run when neither ``problems`` nor ``end`` is given.
DEFAULT_PROBLEMS = 5


@dataclass(frozen=True)
class LangConfig:
    """What to run (the resolved config is written to ``config.json`` under ``run``)."""

    __pydantic_config__ = STRICT

    task: str = "game24"
    """Task id: ``game24``, ``writing`` or ``math``."""
    method: str = "icrl-preset"
    """Method id (``icpi lang --help`` lists them; see the README's table)."""
    problems: int | None = None
    """Number of problems; unset: all from ``start`` to ``end`` when ``end`` is given,
    else 5."""
    start: int | None = None
    """Position of the first problem in the task's list (0-based, as Tree of Thoughts'
    ``--task_start_index``): Game of 24's ranking row (rank − 1; the test split is
    900–999), the math file's line, the writing draw; unset: the split's first."""
    end: int | None = None
    """Position after the last problem (as ``--task_end_index``); unset: ``problems``."""
    rounds: int = 5
    """Rounds per problem (ICRL: one response each; ME-ICPO: k candidates each; CoT-only
    and Long-CoT answer once, whatever this says)."""
    seed: int = 0
    """Seed of every model call (each problem's calls derive from it) and of the problem
    draw of random splits and writing; the ranked Game of 24 splits and the math file take
    their problems in order (choose them with ``start``/``end``)."""
    temperature: float = 0.6
    """Policy sampling temperature (both papers: 0.6)."""
    top_p: float = 0.95
    """Policy nucleus mass (both papers: 0.95)."""
    max_tokens: int = 1000
    """Completion tokens per response (ICRL Game of 24: ≤ 1000)."""
    judge_tokens: int = 1024
    """Completion tokens of a judge verdict (the judge reasons first; the authors' code:
    1024 at temperature 0)."""
    helper_tokens: int = 100
    """Completion tokens of a critique, reflection or summary (ME-ICPO: ≤ ~100)."""
    prompts: PromptSetName = "package"
    """Texts shown to the model: ``package`` (written for icpi) or ``paper`` (the ICRL
    paper's instructions, Game of 24 task with its 5 demonstrations, writing task and
    judges, word for word)."""
    chat: bool = False
    """Send chat messages (else plain completion prompts, which the embedded 135M model
    follows better)."""
    context_tokens: int | None = None
    """Prompt budget, tokens (the newest attempts that fit are kept); unset: the context
    window (the embedded server's, or what the endpoint reports, else 32768) minus
    ``max_tokens`` and a 64-token margin."""
    extra_body: dict[str, Any] | None = None
    """Extra request fields sent with every call (e.g. ``{"chat_template_kwargs":
    {"enable_thinking": false}}``); part of the cache key."""
    task_settings: TaskSettings = field(default_factory=TaskSettings)
    """The task's settings (its own dataclass; see :func:`load_lang_config`)."""
    settings: LangMethodSettings = field(default_factory=LangMethodSettings)
    """The method's settings (its own dataclass; see :func:`load_lang_config`)."""

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}")
        if self.problems is not None and self.problems < 1:
            raise ConfigError(f"problems must be >= 1, got {self.problems}")
        if self.start is not None and self.start < 0:
            raise ConfigError(f"start must be >= 0, got {self.start}")
        if self.end is not None and self.end <= (self.start or 0):
            raise ConfigError(f"end ({self.end}) must be above start ({self.start or 0})")
        if self.context_tokens is not None and self.context_tokens < 256:
            raise ConfigError("context_tokens must be >= 256")
        if min(self.max_tokens, self.judge_tokens, self.helper_tokens) < 1:
            raise ConfigError("max_tokens, judge_tokens and helper_tokens must be >= 1")

    @property
    def rounds_run(self) -> int:
        """Rounds actually run (single-pass baselines answer once)."""
        return get_method(self.method).rounds_run(self.rounds)

    def count(self, start: int) -> int:
        """Problems to run from position ``start``.

        Args:
            start: The resolved first position.

        Returns:
            ``problems``, else ``end - start``, else :data:`DEFAULT_PROBLEMS`.
        """
        if self.problems is not None:
            return self.problems if self.end is None else min(self.problems, self.end - start)
        if self.end is not None:
            return self.end - start
        return DEFAULT_PROBLEMS


RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(LangConfig)) - {
    "task_settings",
    "settings",
}


def setting_owners() -> dict[str, list[str]]:
    """Which tasks and methods have each setting.

    Returns:
        ``{setting: [task or method ids]}``.
    """
    owners: dict[str, list[str]] = {}
    for name, cls in load_tasks().items():
        for f in dataclasses.fields(cls.Settings):
            owners.setdefault(f.name, []).append(name)
    for name, m in load_methods().items():
        for f in dataclasses.fields(m.Settings):
            owners.setdefault(f.name, []).append(name)
    return owners


def load_lang_config(
    *layers: Mapping[str, Any] | None, where: str = "", strict: bool = True
) -> LangConfig:
    """Resolve a language run's configuration from layers (defaults < file < flags).

    A task or method setting may be given nested (``task_settings``, ``settings``) or flat
    beside the run-level keys; a flat one goes to the chosen task's or method's settings,
    and one that belongs to neither is refused, naming the tasks and methods it applies to.

    Args:
        *layers: Mappings with :class:`LangConfig` keys.
        where: Where the values come from, for messages.
        strict: Refuse settings of other tasks and methods (``False``: drop them, as an old
            flat ``config.json`` lists every setting).

    Returns:
        The configuration, settings instances of the task's and method's classes.

    Raises:
        ConfigError: On an unknown task, method or setting, or an invalid value.
    """
    data = merge(*layers)
    task = get_task(str(data.get("task", "game24")))
    method = get_method(str(data.get("method", "icrl-preset")))
    task_fields = {f.name for f in dataclasses.fields(task.Settings)}
    method_fields = {f.name for f in dataclasses.fields(method.Settings)}
    ts = dict(data.pop("task_settings", None) or {})
    ms = dict(data.pop("settings", None) or {})
    refused = []
    for key in [k for k in data if k not in RUN_FIELDS]:
        value = data.pop(key)
        if key in task_fields:
            ts[key] = value
        elif key in method_fields:
            ms[key] = value
        elif strict:
            owners = setting_owners().get(key)
            if owners:
                refused.append(f"{key!r} does not apply (it applies to {', '.join(owners)})")
            else:
                refused.append(f"unknown setting {key!r}")
    if refused:
        src = f" in {where}" if where else ""
        raise ConfigError(
            f"invalid settings{src} for task {task.name} and method {method.name}: "
            + "; ".join(refused)
        )
    task_settings = load(task.Settings, ts, where=f"task {task.name}")
    settings = load(method.Settings, ms, where=f"method {method.name}")
    base = load(LangConfig, data, where=where)
    return dataclasses.replace(base, task_settings=task_settings, settings=settings)


def resolve(cfg: LangConfig) -> LangConfig:
    """A configuration whose settings are the task's and method's classes.

    A :class:`LangConfig` built directly holds the base settings classes until resolved
    (their defaults); settings of the wrong class are refused.

    Args:
        cfg: The configuration.

    Returns:
        The resolved configuration.

    Raises:
        ConfigError: If a settings instance belongs to another task or method.
    """
    task, method = get_task(cfg.task), get_method(cfg.method)
    ts, ms = cfg.task_settings, cfg.settings
    if type(ts) is TaskSettings:
        ts = task.Settings()
    if type(ms) is LangMethodSettings:
        ms = method.Settings()
    if not isinstance(ts, task.Settings):
        raise ConfigError(f"task {task.name} takes {task.Settings.__name__}, got {ts!r}")
    if not isinstance(ms, method.Settings):
        raise ConfigError(f"method {method.name} takes {method.Settings.__name__}, got {ms!r}")
    return dataclasses.replace(cfg, task_settings=ts, settings=ms)


def lang_config(**values: Any) -> LangConfig:
    """Build a configuration from keywords, settings given flat or nested.

    ``lang_config(method="me-icpo", k=4, step_judge="rule")`` is
    ``load_lang_config({...})``: the Python API's shortcut.

    Args:
        **values: :class:`LangConfig` fields and task or method settings.

    Returns:
        The resolved configuration.
    """
    return load_lang_config(values, where="lang_config()")


def dump_lang_config(cfg: LangConfig) -> dict[str, Any]:
    """The JSON data of a configuration (what ``config.json`` records under ``run``).

    Args:
        cfg: The configuration.

    Returns:
        Its fields; ``task_settings`` and ``settings`` those of their classes.
    """
    cfg = resolve(cfg)
    out = {f: getattr(cfg, f) for f in sorted(RUN_FIELDS)}
    return {
        **out,
        "task_settings": dump(cfg.task_settings),
        "settings": dump(cfg.settings),
    }


def migrate_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Read a language run's ``config.json`` of any format as the current one.

    Format 2 (icpi 0.3 and earlier) kept every setting flat under ``run``, those of other
    tasks and methods included; they are sorted into ``task_settings`` and ``settings``
    (settings that did not apply are dropped) and the old defaults that changed are kept
    as they were (the judge's 16 tokens).

    Args:
        stored: The parsed ``config.json``.

    Returns:
        The configuration in format :data:`LANG_CONFIG_FORMAT` (``migrated_from`` says
        from which).

    Raises:
        RunDirError: On a format this version cannot read.
    """
    fmt = stored.get("format")
    if fmt == LANG_CONFIG_FORMAT:
        return dict(stored)
    if fmt != 2:
        raise RunDirError(f"language run config format {fmt!r} is not readable by this icpi")
    run = dict(stored.get("run") or {})
    old_defaults = {"judge_tokens": 16, "prompts": "package"}
    for key, value in old_defaults.items():
        run.setdefault(key, value)
    cfg = load_lang_config(run, where="config.json (format 2)", strict=False)
    return {**stored, "format": LANG_CONFIG_FORMAT, "migrated_from": fmt,
            "run": dump_lang_config(cfg)}  # fmt: skip


def read_run_config(path: Path | str) -> dict[str, Any]:
    """Read a language run directory's ``config.json`` in the current format.

    Args:
        path: The run directory.

    Returns:
        The configuration (migrated from an older format when needed).

    Raises:
        RunDirError: If there is no readable ``config.json``.
    """
    file = Path(path) / "config.json"
    try:
        stored = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunDirError(f"{file} is unreadable ({err})") from None
    if not isinstance(stored, dict):
        raise RunDirError(f"{file} does not hold a mapping")
    return migrate_config(stored)


def is_language_run(path: Path | str) -> bool:
    """Whether a directory holds a language run (``attempts/`` and a language config).

    Args:
        path: The directory.

    Returns:
        True for a language run directory.
    """
    p = Path(path)
    if not (p / "attempts").is_dir() or not (p / "config.json").is_file():
        return False
    try:
        stored = json.loads((p / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(stored, dict) and "reward_seen" in stored


__all__ = [
    "DEFAULT_PROBLEMS",
    "LANG_CONFIG_FORMAT",
    "LangConfig",
    "dump_lang_config",
    "is_language_run",
    "lang_config",
    "load_lang_config",
    "migrate_config",
    "read_run_config",
    "resolve",
]
