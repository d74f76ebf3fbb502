import sys
from pathlib import Path

# The graph tests import their helpers (rosgraph.py) from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))
