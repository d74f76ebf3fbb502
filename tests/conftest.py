import os
import signal
import threading

# Headless rendering for every test process (MuJoCo reads it at import).
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


def _teardown_on_sigterm(signum: int, frame: object) -> None:
    """A terminated test run tears down like an interrupted one (Ctrl-C).

    Every fixture's teardown and every ``finally`` runs, so the node processes, servers
    and loaders the tests started are closed, not orphaned. A second SIGTERM ends the
    run at once.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: object) -> None:
    """Install the SIGTERM handler (the main thread of the pytest process only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _teardown_on_sigterm)
