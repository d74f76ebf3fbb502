"""Run the embedded llama.cpp server as a child that never outlives its parent.

``python -m icpi.llm._child PARENT_PID <llama_cpp.server arguments>`` starts a watcher
thread that ends this process as soon as ``PARENT_PID`` is gone (the child is re-parented,
or the PID no longer exists), then runs ``llama_cpp.server`` in this very process. Unlike a
parent-death signal, this works whichever thread of the parent started the server, and
after any kind of parent death (``kill -9`` included).
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time

#: How often the watcher looks at the parent, seconds.
POLL_S = 0.5


def _parent_alive(pid: int) -> bool:
    if os.getppid() != pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(pid: int) -> None:
    while _parent_alive(pid):
        time.sleep(POLL_S)
    os._exit(0)  # the parent is gone: leave at once, whatever the server is doing


def main() -> None:
    """Watch the parent, then serve."""
    parent = int(sys.argv[1])
    threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()
    sys.argv = ["llama_cpp.server", *sys.argv[2:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
