"""Headless OpenGL backend selection (imports no MuJoCo).

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when it is first imported. Call
:func:`choose_gl_backend` before that (the CLI does): it keeps a backend the user set when
it works, otherwise probes EGL then OSMesa in a subprocess and exports the first that works.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

log = logging.getLogger(__name__)

_PROBE = (
    "import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>');"
    " r = mujoco.Renderer(m, 8, 8); r.update_scene(mujoco.MjData(m)); r.render(); r.close()"
)


def choose_gl_backend(candidates: tuple[str, ...] = ("egl", "osmesa")) -> str | None:
    """Pick a working headless OpenGL backend and export it as ``MUJOCO_GL``.

    Args:
        candidates: Backends to probe, in order of preference.

    Returns:
        The backend in use, or None when none works (rendering is then unavailable;
        ``apt-get install libegl1`` or ``libosmesa6`` provides one).
    """
    if "mujoco" in sys.modules:
        return os.environ.get("MUJOCO_GL") or None
    preferred = os.environ.get("MUJOCO_GL")
    order = (preferred, *[c for c in candidates if c != preferred]) if preferred else candidates
    for backend in order:
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
        log.debug("GL backend %s unavailable: %s", backend, probe.stderr.decode()[-300:])
    log.warning("no headless OpenGL backend works (tried %s); rendering disabled", order)
    return None
