"""Worker processes that end with the process that started them.

``kill -9`` of ``calf prepare --workers N`` or ``calf benchmark --jobs N`` gives the parent no
chance to stop its workers: before, they finished their case or run and then idled, holding
the caller's stdout (a ``$(...)`` around the command hung) and training beside a resume
started at once. :func:`end_with`, called first in every worker, starts a daemon thread that
checks once a second whether the parent still exists and ends the worker when it does not.

Why a thread that polls and not ``prctl(PR_SET_PDEATHSIG)``: the death signal follows the
thread that forked the worker (the forkserver's, for prepare's pool), exists on Linux only,
and fires when that thread ends even though the process lives on; a check of the parent's
pid works the same on every POSIX system and for any start method. A worker cut off
mid-case or mid-epoch leaves what a crash leaves: parts and checkpoints are written
atomically, and the next run resumes.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["ORPHANED_EXIT", "end_with", "is_alive"]

ORPHANED_EXIT = 137  # 128 + SIGKILL, as if it had been killed with its parent
CHECK_SECONDS = 1.0


def is_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 is sent, which only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def end_with(parent: int, *, every: float = CHECK_SECONDS) -> threading.Thread:
    """End this process (exit :data:`ORPHANED_EXIT`, no clean-up) within about ``every``
    seconds of the death of process ``parent``; returns the watching daemon thread."""

    def watch() -> None:
        while is_alive(parent):
            time.sleep(every)
        os._exit(ORPHANED_EXIT)

    thread = threading.Thread(target=watch, name=f"calf-end-with-{parent}", daemon=True)
    thread.start()
    return thread
