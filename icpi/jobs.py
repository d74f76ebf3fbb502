"""One way to run many jobs, here or on Ray: ``icpi bench`` and ``icpi collect`` share it.

A benchmark hands over one job per run, a collection one job per instance; both get the
same behaviour from :func:`run_jobs` (the shape of Ray's ``ray.util.multiprocessing``: a
function mapped over items, results as they finish):

- **where**: ``local`` runs a lane of jobs in a pool of worker processes (spawned), or in
  threads of this process when its jobs share something that lives here (one model
  endpoint with its cache and embedded server; a task object); ``ray`` makes each job a
  Ray task, on the cluster of ``RAY_ADDRESS`` when it is set, else on a local Ray with
  ``workers`` CPUs;
- **retries**: a worker that dies (killed, out of memory) has its jobs run again, up to
  ``retries`` times (on Ray per job; locally per lane, since a dead worker takes its pool
  with it) — a job resumes from its own output (a run directory, an instance file) — and
  then the command stops with one line and exit 3 (:class:`WorkerLostError`; rerunning it
  resumes);
- **errors**: an error inside a job reaches the caller as itself: a user error stays one
  line (never wrapped in Ray's remote traceback), a bug shows its traceback; the jobs
  still queued are cancelled.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from icpi.errors import ConfigError, EndpointDownError, UserError, WorkerLostError

log = logging.getLogger(__name__)

T = TypeVar("T")
Backend = Literal["local", "ray"]
BACKENDS: tuple[Backend, ...] = ("local", "ray")
#: Times the jobs of a worker that died are run again before the command stops.
RETRIES = 2


@dataclass(frozen=True)
class Lane(Generic[T]):
    """Jobs that run alike: one function over items, a bounded number at a time."""

    fn: Callable[[T], Any]
    """The job: called with one item; a process lane's must be picklable (module level)."""
    items: Sequence[T]
    """One item per job."""
    limit: int
    """Jobs in flight at once (locally the pool's size; on Ray only for a shared lane: a
    cluster schedules the others by their CPUs)."""
    shared: bool = False
    """Its jobs share something of this process: locally they run in its threads."""


def run_jobs(
    lanes: Sequence[Lane[Any]],
    backend: str = "local",
    workers: int = 1,
    retries: int = RETRIES,
    name: Callable[[Any], str] = str,
) -> Iterator[tuple[Any, Any]]:
    """Run every job of the lanes; yield ``(item, result)`` as each job finishes.

    Args:
        lanes: The jobs.
        backend: ``local`` or ``ray`` (see the module docstring).
        workers: CPUs of a local Ray (a cluster of ``RAY_ADDRESS`` brings its own).
        retries: Times the jobs of a worker that died are run again.
        name: How a job's item reads in messages.

    Yields:
        Each finished job's item and the function's result, in the order they finish.

    Raises:
        ConfigError: On an unknown backend.
        UserError: If Ray is asked for and not installed, or a job raised one.
        WorkerLostError: If workers died more often than ``retries`` allows.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    lanes = [lane for lane in lanes if lane.items]
    if not lanes:
        return
    if backend == "ray":
        yield from _run_ray(lanes, workers, retries, name)
    else:
        yield from _run_local(lanes, retries, name)


# ---------------------------------------------------------------------------- local
def _run_local(
    lanes: Sequence[Lane[Any]], retries: int, name: Callable[[Any], str]
) -> Iterator[tuple[Any, Any]]:
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding threads

    def start(lane: Lane[Any]) -> cf.Executor:
        if lane.shared:
            return cf.ThreadPoolExecutor(max_workers=lane.limit, thread_name_prefix="icpi-job")
        return cf.ProcessPoolExecutor(max_workers=lane.limit, mp_context=spawn)

    pools = [start(lane) for lane in lanes]
    pending: dict[cf.Future[Any], tuple[int, int]] = {}  # future -> (lane, item index)
    done: list[set[int]] = [set() for _ in lanes]
    deaths = [0 for _ in lanes]

    def submit(k: int, indices: Sequence[int]) -> None:
        for i in indices:
            pending[pools[k].submit(lanes[k].fn, lanes[k].items[i])] = (k, i)

    try:
        for k, lane in enumerate(lanes):
            submit(k, range(len(lane.items)))
        while pending:
            finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            broken: set[int] = set()
            failed: list[cf.Future[Any]] = []
            for fut in finished:  # every finished job is handed over before an error
                k, i = pending.pop(fut)
                if fut.exception() is None:
                    done[k].add(i)
                    yield lanes[k].items[i], fut.result()
                elif isinstance(fut.exception(), BrokenProcessPool):
                    broken.add(k)
                else:
                    failed.append(fut)
            if failed:
                failed[0].result()  # raises the job's error
            for k in broken:  # a worker died: its pool is gone, with every job it held
                again = [i for i in range(len(lanes[k].items)) if i not in done[k]]
                deaths[k] += 1
                _retry_or_stop(deaths[k], retries, [lanes[k].items[i] for i in again], name)
                for fut in [f for f, (j, _) in pending.items() if j == k]:
                    del pending[fut]
                pools[k].shutdown(wait=True, cancel_futures=True)
                pools[k] = start(lanes[k])
                submit(k, again)
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def _retry_or_stop(
    deaths: int, retries: int, unfinished: Sequence[Any], name: Callable[[Any], str]
) -> None:
    """Log a retry after a worker died, or stop when the retries are spent."""
    which = ", ".join(name(item) for item in unfinished[:3])
    more = f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else ""
    if deaths > retries:
        raise WorkerLostError(
            f"a worker died {deaths} times (killed, or out of memory?) with {which}{more}"
            " unfinished; rerun the same command to resume"
        )
    log.warning(
        "a worker died (killed, or out of memory?); running %s%s again (retry %d of %d)",
        which,
        more,
        deaths,
        retries,
    )


# ---------------------------------------------------------------------------- Ray
@contextlib.contextmanager
def ray_session(workers: int) -> Iterator[Any]:
    """Ray, connected: to the cluster of ``RAY_ADDRESS`` when it is set, else a local Ray.

    A Ray this process started is shut down at the end; one already running is left up.

    Args:
        workers: CPUs of a local Ray.

    Yields:
        The ``ray`` module.

    Raises:
        UserError: If Ray is not installed, or the cluster of RAY_ADDRESS cannot be joined.
    """
    try:
        import ray
    except ImportError:
        raise UserError(
            "the Ray backend needs Ray: pip install 'icpi[ray]' (or use --backend local)"
        ) from None
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        address = os.environ.get("RAY_ADDRESS")
        if address:
            log.info("connecting to the Ray cluster at RAY_ADDRESS=%s", address)
            try:
                ray.init(address=address, **options)
            except ConnectionError as err:
                token = "" if os.environ.get("RAY_AUTH_MODE") == "token" else (
                    "; a cluster that ray start --head started asks for a token (Ray 2.60):"
                    " set RAY_AUTH_MODE=token, with the head's token (ray get-auth-token) in"
                    " ~/.ray/auth_token"
                )  # fmt: skip
                raise UserError(
                    f"cannot join the Ray cluster at {address} ({err}){token}"
                ) from None
        else:
            # Its notice that a local Ray turns token authentication on is not the user's
            # business below DEBUG.
            notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
            if not log.isEnabledFor(logging.DEBUG):
                notice.setLevel(logging.ERROR)
            ray.init(num_cpus=workers, include_dashboard=False, **options)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def _run_ray(
    lanes: Sequence[Lane[Any]], workers: int, retries: int, name: Callable[[Any], str]
) -> Iterator[tuple[Any, Any]]:
    with ray_session(workers) as ray:
        from ray.exceptions import NodeDiedError, OutOfMemoryError, RayTaskError, WorkerCrashedError

        # Ray runs a task again when its worker dies (max_retries); an error of the job
        # itself is not retried.
        remote = ray.remote(num_cpus=1, max_retries=retries)(_call)
        queues = [list(lane.items) for lane in lanes]
        pending: dict[Any, tuple[int, Any]] = {}

        def fill() -> None:
            for k, lane in enumerate(lanes):
                while queues[k] and (
                    not lane.shared or sum(j == k for j, _ in pending.values()) < lane.limit
                ):
                    item = queues[k].pop(0)
                    pending[remote.remote(lane.fn, item)] = (k, item)

        try:
            fill()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    _, item = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except RayTaskError as err:
                        cause = err.cause
                        if isinstance(cause, UserError | EndpointDownError | WorkerLostError):
                            raise cause.with_traceback(None) from None
                        raise
                    except (WorkerCrashedError, OutOfMemoryError, NodeDiedError) as err:
                        raise WorkerLostError(
                            f"the Ray worker running {name(item)} died {retries + 1} times"
                            f" ({type(err).__name__}); rerun the same command to resume"
                        ) from None
                    yield item, result
                fill()
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
