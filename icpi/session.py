"""One run session: a run directory owned by this process, and the model client it uses.

Manipulation runs (:func:`icpi.manipulation.run.run_method`, and through it the arm
driver) and language runs (:func:`icpi.language.runner.run_language`) all open their
directory through :class:`RunSession`:

1. the directory is locked for this process (:class:`~icpi.core.lock.DirLock`; a second
   process gets one line naming the holder);
2. ``config.json`` is written, or compared for a resume (:meth:`RunDir.open`);
   the settings that do not change the results go to ``sessions.jsonl``;
3. the LLM client is created on first use, logging every request to ``llm_calls.jsonl``
   and sharing the completion cache; :meth:`sampler` builds the core's sampler on it;
4. :meth:`close` closes the client and releases the lock (also on errors).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from icpi.core.lock import DirLock
from icpi.core.rundir import RunDir
from icpi.core.samplers import LLMSampler
from icpi.llm.client import LLMClient
from icpi.llm.config import LLMConfig


class RunSession:
    """A run directory owned by this process, with its (lazily created) model client."""

    def __init__(
        self,
        path: Path | str,
        config: Mapping[str, Any],
        *,
        seed: int | None,
        llm: LLMConfig | None = None,
        what: str = "run",
        grow: tuple[str, ...] = (),
        config_format: int | None = None,
        legacy: Mapping[str, Any] | None = None,
    ) -> None:
        """Lock and open the run directory.

        Args:
            path: The run directory (created, or resumed when it holds the same run).
            config: What determines the run's results (written to ``config.json``).
            seed: Run seed (``meta.json``).
            llm: The model endpoint, when the run queries one.
            what: What the directory is, for messages (``run``, ``language run``).
            grow: Budget keys a resume may raise (see :meth:`RunDir.open`).
            config_format: Format of ``config.json`` (``None``: the core's; see
                :meth:`RunDir.open`).
            legacy: Keys added since runs were first written, with the values that
                reproduce a run written before them (see :meth:`RunDir.open`).

        Raises:
            RunDirError: If another process holds the directory, or it holds another run.
        """
        self.lock = DirLock(path, what=what)
        try:
            session = {"llm": llm.session()} if llm is not None else None
            fmt = {} if config_format is None else {"config_format": config_format}
            self.run_dir = RunDir.open(
                path, config, seed=seed, session=session, grow=grow, legacy=legacy, **fmt
            )
        except BaseException:
            self.lock.release()
            raise
        self.llm = llm
        self._client: LLMClient | None = None

    @property
    def path(self) -> Path:
        """The run directory."""
        return self.run_dir.path

    @property
    def client(self) -> LLMClient:
        """The model client (created on first use; requests logged to ``llm_calls.jsonl``).

        Its model is resolved when it is created, before the run's first rollout (a
        configured endpoint without ``--model`` is asked for its list once).

        Raises:
            RuntimeError: If the session was opened without an LLM configuration.
            NoModelError: If no model is configured and the endpoint names none.
            LLMEndpointDownError: If the endpoint stayed down while it was asked.
        """
        if self._client is None:
            if self.llm is None:
                raise RuntimeError("this run session has no language model configured")
            log_path = self.llm.log_path or self.run_dir.llm_log_file
            client = LLMClient(dataclasses.replace(self.llm, log_path=log_path))
            try:
                client.resolve_model()  # once, before the first rollout
            except BaseException:
                client.close()
                raise
            self._client = client
        return self._client

    def sampler(self, **params: Any) -> LLMSampler:
        """A sampler on the session's client.

        Args:
            **params: :class:`~icpi.core.samplers.LLMSampler` arguments (per-call sampling
                overrides, ``resample_temperature``); the rest comes from the LLM config.

        Returns:
            The sampler.
        """
        return LLMSampler(self.client, **params)

    def close(self, failed: bool = False) -> None:
        """Close the model client and release the directory (idempotent).

        Args:
            failed: The run ended with an error (e.g. its records belong to another
                run): a ``config.json`` that was missing is not written back (see
                :meth:`~icpi.core.rundir.RunDir.settle`).
        """
        if self._client is not None:
            self._client.close()
            self._client = None
        if not failed and self.lock.held:
            self.run_dir.settle()
        self.lock.release()

    def __enter__(self) -> RunSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc is not None)
