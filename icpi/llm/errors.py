"""Exceptions of the LLM layer. Every failure ends in one of these, never in a hang.

How a run treats them (see :mod:`icpi.errors`):

- :class:`LLMUnavailableError`, :class:`LLMBadRequestError` and
  :class:`LLMEmptyResponseError` end one call: the loop re-samples, then falls back, and
  counts it (:data:`MODEL_ERRORS`);
- :class:`EndpointDownError` (the endpoint failed every call for ``outage_s``) stops the
  run, resumable, exit code 3;
- :class:`LLMAuthError`, :class:`NoModelError` (no ``--model`` and the endpoint lists
  none), :class:`CacheMissError` (offline replay without the completion) and
  :class:`MissingDependencyError` are the user's to fix: exit code 2.
"""

from __future__ import annotations

from icpi.errors import EndpointDownError, UserError


class LLMError(RuntimeError):
    """Base class of every error raised by :mod:`icpi.llm`."""


class LLMUnavailableError(LLMError):
    """The endpoint did not answer usefully after the bounded retries of one call.

    Timeouts, refused or reset connections, rate limits, 5xx and malformed bodies end here.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        """Create the error.

        Args:
            message: Every attempt and the call's budget.
            reason: The last failure in a few words (``connection failed``, ``HTTP 503``).
        """
        super().__init__(message)
        self.reason = reason or "no usable answer"


class LLMBadRequestError(LLMError):
    """The endpoint refused this request (HTTP 400/413/422, e.g. a prompt beyond its context)."""


class LLMEmptyResponseError(LLMError):
    """Every sample was empty or refused, also after the bounded re-asks."""


class LLMAuthError(LLMError, UserError):
    """The endpoint refused the credentials or does not know the model (HTTP 401/403/404)."""


class NoModelError(LLMError, UserError):
    """No model is configured and the endpoint names none to use (pass ``--model``)."""


class CacheMissError(LLMError, UserError):
    """Offline mode found no cached completion for a request."""


class MissingDependencyError(LLMError, ImportError, UserError):
    """An optional dependency (the ``llm`` extra) is not installed."""


class ServerStartError(LLMError):
    """The embedded llama.cpp server did not start or did not answer in time."""


class LLMEndpointDownError(LLMError, EndpointDownError):
    """The endpoint failed every call for longer than the configured outage time."""


#: Errors that end one model call like an invalid answer (re-sample, then fall back).
MODEL_ERRORS: tuple[type[BaseException], ...] = (
    LLMUnavailableError,
    LLMBadRequestError,
    LLMEmptyResponseError,
)
