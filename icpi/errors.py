"""The error boundary of the package: which failures are the user's, which the endpoint's.

Every ``icpi`` verb ends in one of three ways (see :mod:`icpi.cli.main`):

- a :class:`UserError` (a bad flag, a config file that does not validate, a run directory
  that holds another run or is in use, a corrupt dataset, a missing optional dependency):
  one line naming the problem and the fix, exit code :data:`EXIT_USER`;
- a :class:`ResumableError` — an :class:`EndpointDownError` (the model endpoint stayed
  unreachable past the stated outage time) or a :class:`WorkerLostError` (workers of a
  benchmark or collection kept dying): one line, exit code :data:`EXIT_ENDPOINT`; the
  output keeps everything finished and the same command resumes it;
- anything else is a bug in the package and shows its traceback.

This module imports nothing, so every layer (core included) may raise these.
"""

from __future__ import annotations

#: Exit code of a user mistake (bad flag, bad config, foreign run directory, ...).
EXIT_USER = 2
#: Exit code of work stopped before its end that the same command resumes (a model endpoint
#: that stayed down past the outage time, workers that kept dying).
EXIT_ENDPOINT = 3


class UserError(Exception):
    """A mistake the user can fix; its message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A setting (flag, config file, ROS parameter, method spec) does not validate."""


class RunDirError(UserError, ValueError):
    """A run directory cannot be used: another configuration, a foreign file, in use."""


class ResumableError(Exception):
    """The work stopped before its end; the same command resumes it (exit code 3)."""


class EndpointDownError(ResumableError):
    """The model endpoint stayed unreachable past the outage time; the run can be resumed."""


class WorkerLostError(ResumableError):
    """Worker processes died (killed, out of memory) more often than the retries allow."""
