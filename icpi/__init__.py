"""icpi: in-context policy improvement for dynamic robot skills.

Importing the package registers the simulated tasks with Gymnasium
(``icpi/Slide-v0``, ``icpi/SlideGC-v0``, ``icpi/RopeSwing-v0``, ``icpi/RopeSwingGC-v0``,
``icpi/BallRollGC-v0``). Registration is lazy: MuJoCo is imported only when an env or
task is created, so the in-context core (:mod:`icpi.core`) stays free of MuJoCo and ROS.
"""

from importlib.metadata import PackageNotFoundError, version

from icpi.envs import register_envs

try:  # one version source: pyproject.toml, as installed
    __version__ = version("icpi")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"

register_envs()

__all__ = ["__version__", "register_envs"]
