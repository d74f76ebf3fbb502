"""A proposer of known quality: the calibration instrument of the LLM-guided methods.

It is **not a language model**. It is an OpenAI-compatible endpoint that answers every
ICPI prompt with the correction from the prompt's query θ to a near-optimal θ* of the
instance, plus Gaussian noise of a chosen size — so that a method's use of a model can be
measured against a model whose quality is known (``σ = 0``: perfect up to the prompt's
resolution; ``random``: uniform corrections; ``zero``: always ``0 0 0``). The answers go
through the same HTTP, client, cache, parse and clip path as any model's.

How it knows what to answer:

- **The mode is the model name** asked for: ``calibration-sigma<S>`` (noise of S percent
  of each θ range per component, e.g. ``calibration-sigma3``), ``calibration-random``,
  ``calibration-zero``.
- **The instance** (task and seed) comes from the request's OpenAI ``user`` field,
  ``icpi-instance:<seed>:<task>``: a run whose model name starts with ``calibration``
  sends it (:func:`instance_params`; it is part of the cache key like any request field).
  From it the endpoint rebuilds the instance exactly as the run does
  (``task.sample_instance(np.random.default_rng(seed))``) and finds θ* by a numeric search
  on the real env (random shots, then Nelder–Mead, :func:`~icpi.envs.search.search_theta`),
  cached on disk per (task, seed).
- **The query θ and the units** are read from the prompt text, as a model must: the unit
  of θ from the prompt's own words (``percent of range``, ``permille of range``), θ from
  the first numbers of its last line (``θ e ->``). The instance's θ* is the one thing it
  knows that a model does not; that is its purpose.

``icpi llm serve --calibration`` serves it; ``icpi bench --preset model-quality`` starts
one in-process.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from icpi.core.files import write_json
from icpi.llm.endpoint import AnswerError, AnswerRequest, FunctionEndpoint

log = logging.getLogger(__name__)

#: Prefix of every calibration model name (a run that asks one sends its instance).
MODEL_PREFIX = "calibration"
#: Prefix of the instance tag in the request's ``user`` field.
INSTANCE_PREFIX = "icpi-instance:"
#: Model names ``/v1/models`` lists (any ``calibration-sigma<S>`` is answered).
LISTED_MODELS = (
    "calibration-sigma0",
    "calibration-sigma1",
    "calibration-sigma3",
    "calibration-sigma10",
    "calibration-random",
    "calibration-zero",
)
#: Stop the θ* search once a cost below this is found [m].
OPTIMUM_TOLERANCE = 2e-4
#: Fresh searches (new random shots) when one stalls above the tolerance.
SEARCH_ATTEMPTS = 3


@dataclass(frozen=True)
class Mode:
    """What a calibration model answers."""

    kind: Literal["sigma", "random", "zero"]
    """``sigma``: θ* − θ plus noise; ``random``: uniform; ``zero``: no correction."""
    sigma: float = 0.0
    """Noise standard deviation per component, as a fraction of the θ range."""
    draw: int = 0
    """Which draw of the noise: another draw answers the same prompt with other noise."""

    @classmethod
    def parse(cls, model: str) -> Mode:
        """The mode of a calibration model name.

        Args:
            model: E.g. ``calibration-sigma3``, ``calibration-random``; a suffix
                ``-draw<K>`` picks another draw of the noise (``calibration-sigma3-draw1``).

        Returns:
            The mode.

        Raises:
            AnswerError: If the name is not a calibration model.
        """
        m = re.fullmatch(
            r"calibration-(?:sigma(\d+(?:\.\d+)?)|(random)|(zero))(?:-draw(\d+))?", model
        )
        if m is None:
            raise AnswerError(
                f"unknown model {model!r}; the calibration endpoint answers"
                f" calibration-sigma<percent> (e.g. calibration-sigma3), calibration-random"
                f" and calibration-zero, each with an optional -draw<K> (another noise draw)"
            )
        draw = int(m.group(4) or 0)
        if m.group(2):
            return cls("random", draw=draw)
        if m.group(3):
            return cls("zero", draw=draw)
        return cls("sigma", float(m.group(1)) / 100.0, draw=draw)


def is_calibration_model(model: str | None) -> bool:
    """Whether a model name asks the calibration proposer (the run then tags its instance)."""
    return model is not None and model.startswith(MODEL_PREFIX)


def instance_tag(task: str, seed: int) -> str:
    """The ``user`` field of a run's requests: ``icpi-instance:<seed>:<task>``."""
    return f"{INSTANCE_PREFIX}{seed}:{task}"


def parse_instance_tag(user: str | None) -> tuple[str, int]:
    """The (task, seed) of an instance tag.

    Args:
        user: The request's ``user`` field.

    Returns:
        Task spec and seed.

    Raises:
        AnswerError: If the field is missing or malformed.
    """
    m = re.fullmatch(re.escape(INSTANCE_PREFIX) + r"(\d+):(.+)", user or "")
    if m is None:
        raise AnswerError(
            f"the calibration proposer needs the instance in the request's 'user' field"
            f" ({INSTANCE_PREFIX}<seed>:<task>), got {user!r}; icpi runs send it when"
            f" the model name starts with {MODEL_PREFIX!r}"
        )
    return m.group(2), int(m.group(1))


def instance_params(
    model: str | None, task: str, seed: int, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Sampler arguments of a run, with its instance tag when it asks a calibration model.

    Args:
        model: The configured model name.
        task: The run's task spec.
        seed: The run's seed (the instance is ``sample_instance(default_rng(seed))``).
        params: The method's sampler arguments.

    Returns:
        ``params``, with ``extra_body["user"]`` set for a calibration model.
    """
    out = dict(params)
    if is_calibration_model(model):
        out["extra_body"] = {**dict(out.get("extra_body") or {}), "user": instance_tag(task, seed)}
    return out


# ---------------------------------------------------------------------------- the prompt
_UNITS = re.compile(r"\((percent|permille|1/(\d+)) of range\)")
_INT = re.compile(r"-?\d+")


def read_prompt(prompt: str, dim: int) -> tuple[int, np.ndarray]:
    """The θ unit and the query θ of an ICPI prompt, read as a model reads them.

    Args:
        prompt: The prompt text (chat messages joined by newlines).
        dim: θ's dimension.

    Returns:
        Integer steps across each θ range, and the query θ in those steps.

    Raises:
        AnswerError: If the prompt names no θ unit or its last line is no query.
    """
    unit = _UNITS.search(prompt)
    if unit is None:
        raise AnswerError("no θ unit ('(percent of range)', ...) in the prompt")
    steps = {"percent": 100, "permille": 1000}.get(unit.group(1)) or int(unit.group(2))
    lines = [ln.strip() for ln in prompt.strip().splitlines() if ln.strip()]
    if not lines or not lines[-1].endswith("->"):
        raise AnswerError("the prompt's last line is not a query 'θ e ->'")
    numbers = [int(x) for x in _INT.findall(lines[-1])]
    if len(numbers) < dim:
        raise AnswerError(f"the query line has {len(numbers)} numbers, θ needs {dim}")
    return steps, np.asarray(numbers[:dim], float)


# ---------------------------------------------------------------------------- θ*
def default_store() -> Path:
    """``$XDG_CACHE_HOME/icpi/calibration`` (``~/.cache`` when unset)."""
    import os

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "icpi" / "calibration"


@dataclass(frozen=True)
class Optimum:
    """A near-optimal θ of one instance."""

    task: str
    seed: int
    theta: tuple[float, ...]
    cost: float


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_.") or "task"


def find_optimum(task_spec: str, seed: int) -> Optimum:
    """Search θ* of an instance on the real env (random shots, then Nelder–Mead).

    Args:
        task_spec: Task spec (shipped id or ``module:Class``).
        seed: Instance seed.

    Returns:
        θ* and its cost.
    """
    from icpi.envs import load_task
    from icpi.envs.base import Task
    from icpi.envs.search import search_theta

    task = load_task(task_spec)
    if not isinstance(task, Task):
        raise AnswerError(f"task {task_spec!r} has no batch rollouts to search θ* with")
    instance = task.sample_instance(np.random.default_rng(seed))
    theta, cost = np.zeros(task.theta_spec.dim), math.inf
    for attempt in range(SEARCH_ATTEMPTS):  # Nelder–Mead can stall: start again elsewhere
        found, found_cost = search_theta(
            task,
            instance,
            np.random.default_rng([seed, 17, attempt]),
            n_random=100,
            n_polish=3,
            max_evals_per_polish=400,
            tolerance=OPTIMUM_TOLERANCE,
        )
        if found_cost < cost:
            theta, cost = found, found_cost
        if cost < OPTIMUM_TOLERANCE:
            break
    log.info("θ* of %s seed %d: cost %.2e m", task_spec, seed, cost)
    return Optimum(task_spec, seed, tuple(map(float, theta)), float(cost))


class OptimumStore:
    """θ* per (task, seed), searched once and kept as JSON files in a folder."""

    def __init__(self, folder: Path | str | None = None) -> None:
        """Create the store.

        Args:
            folder: Where the files live; ``None``: :func:`default_store`.
        """
        self.folder = Path(folder) if folder is not None else default_store()
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, int], Optimum] = {}
        self._busy: dict[tuple[str, int], threading.Lock] = {}

    def path(self, task: str, seed: int) -> Path:
        """The file of one instance."""
        return self.folder / f"{_slug(task)}-seed{seed}.json"

    def _read(self, task: str, seed: int) -> Optimum | None:
        import json

        try:
            data = json.loads(self.path(task, seed).read_text())
            opt = Optimum(task, seed, tuple(map(float, data["theta"])), float(data["cost"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        ok = data.get("task") == task and data.get("seed") == seed and math.isfinite(opt.cost)
        return opt if ok else None

    def get(self, task: str, seed: int) -> Optimum:
        """θ* of an instance (searched on first use, then read back).

        Args:
            task: Task spec.
            seed: Instance seed.

        Returns:
            θ* and its cost.
        """
        key = (task, seed)
        with self._lock:
            if key in self._memory:
                return self._memory[key]
            busy = self._busy.setdefault(key, threading.Lock())
        with busy:  # one search per instance, however many requests wait for it
            opt = self._memory.get(key) or self._read(task, seed)
            if opt is None:
                opt = find_optimum(task, seed)
                self._write(opt)
            with self._lock:
                self._memory[key] = opt
        return opt

    def prepare(self, tasks: Iterable[str], seeds: Sequence[int], workers: int = 1) -> None:
        """Search every missing θ* ahead of a benchmark (``workers`` processes).

        Args:
            tasks: Task specs.
            seeds: Instance seeds.
            workers: Processes searching at once.
        """
        missing = [(t, s) for t in tasks for s in seeds if self._read(t, s) is None]
        if not missing:
            return
        log.info("searching θ* of %d instances (%d workers)", len(missing), workers)
        if workers <= 1:
            for t, s in missing:
                self.get(t, s)
            return
        import concurrent.futures as cf
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            for opt in pool.map(find_optimum, *zip(*missing, strict=True)):
                self._write(opt)

    def _write(self, opt: Optimum) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"task": opt.task, "seed": opt.seed, "theta": list(opt.theta), "cost": opt.cost}
        write_json(self.path(opt.task, opt.seed), data)


# ---------------------------------------------------------------------------- the answers
class CalibrationProposer:
    """Answers ICPI prompts with the correction towards θ* (see the module docstring)."""

    def __init__(self, store: OptimumStore | None = None) -> None:
        """Create the proposer.

        Args:
            store: Where θ* is kept; ``None``: the default folder.
        """
        self.store = store or OptimumStore()
        self._specs: dict[str, Any] = {}

    def _spec(self, task: str) -> Any:
        if task not in self._specs:
            from icpi.envs import load_task

            self._specs[task] = load_task(task).theta_spec
        return self._specs[task]

    def __call__(self, request: AnswerRequest) -> list[str]:
        """Answer one request (see :data:`~icpi.llm.endpoint.Answerer`).

        Args:
            request: The request.

        Returns:
            ``n`` corrections, each ``dim`` integers in the prompt's θ unit.

        Raises:
            AnswerError: On an unknown model, a missing instance or an unreadable prompt.
        """
        mode = Mode.parse(request.model)
        task, seed = parse_instance_tag(request.user)
        spec = self._spec(task)
        steps, query = read_prompt(request.prompt, spec.dim)
        if mode.kind == "zero":
            ints = np.zeros((request.n, spec.dim))
        else:
            # seeded by the request: the same request gets the same answers
            digest = zlib.crc32(request.prompt.encode())
            draw = [mode.draw] if mode.draw else []  # draw 0: the seed before draws existed
            rng = np.random.default_rng([request.seed or 0, digest, *draw])
            if mode.kind == "random":
                ints = rng.integers(-steps, steps + 1, size=(request.n, spec.dim)).astype(float)
            else:
                low, span = spec.low_array, spec.high_array - spec.low_array
                target = (np.asarray(self.store.get(task, seed).theta) - low) / span * steps
                noise = rng.normal(0.0, mode.sigma * steps, size=(request.n, spec.dim))
                ints = np.clip(np.rint(target - query + noise), -steps, steps)
        lead = "" if request.chat else " "
        return [lead + " ".join(str(int(v)) for v in row) for row in ints]


def serve(port: int = 0, store: OptimumStore | None = None) -> FunctionEndpoint:
    """The calibration endpoint (not started; use it as a context manager or ``start()``).

    Args:
        port: TCP port on 127.0.0.1; 0 picks a free one.
        store: Where θ* is kept.

    Returns:
        The endpoint.
    """
    return FunctionEndpoint(CalibrationProposer(store), LISTED_MODELS, port=port)


__all__ = [
    "LISTED_MODELS",
    "CalibrationProposer",
    "Mode",
    "Optimum",
    "OptimumStore",
    "find_optimum",
    "instance_params",
    "instance_tag",
    "is_calibration_model",
    "read_prompt",
    "serve",
]
