import subprocess
import sys
from pathlib import Path

import icpi

FORBIDDEN = ("mujoco", "gymnasium", "rclpy")
PKG_DIR = str(Path(icpi.__file__).parent)

# Import the core and the LLM layer with the top-level package stubbed, so that only their
# own imports count (``icpi/__init__`` registers the Gymnasium envs).
ISOLATED = f"""
import sys, types
pkg = types.ModuleType("icpi")
pkg.__path__ = [{PKG_DIR!r}]
sys.modules["icpi"] = pkg
import icpi.core, icpi.core.toy, icpi.llm, icpi.cli.llm
bad = [m for m in {FORBIDDEN!r} if m in sys.modules]
assert not bad, bad
assert 'openai' not in sys.modules  # imported on first request only
"""


def test_core_and_llm_import_no_simulator_or_ros():
    subprocess.run([sys.executable, "-c", ISOLATED], check=True, timeout=60)
