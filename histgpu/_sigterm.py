"""Write out the writers' queued events when the process is asked to stop with SIGTERM.

Events of the synchronous path are in the kernel when ``add_*`` returns, so SIGTERM's default
action (the process ends at once) loses none of them; events queued for the background thread
would all be lost. So while a queue is in use, a SIGTERM handler is installed that waits (at
most :data:`DRAIN_SECONDS`) for the queues to be written, then restores the default action and
raises SIGTERM again, so the process still ends as SIGTERM ends it (exit status -15, no
``atexit``). It is installed by an event queued from the main thread, only where SIGTERM has
its default action (a handler of the user's is never replaced), and removed when the last
queue closes.
"""

from __future__ import annotations

import signal
import threading
import time
import weakref
from types import FrameType
from typing import Any, Dict, Optional

__all__ = ["DRAIN_SECONDS", "watch", "forget"]

DRAIN_SECONDS = 10.0  # docker stop's grace period; a GPU result is normally a millisecond away

# Queues with a background thread, by id. A plain dict: the handler copies it in one step,
# and takes no lock that the interrupted main thread could hold.
_queues: Dict[int, "weakref.ref[Any]"] = {}


def watch(queue: Any) -> None:
    """Register `queue` (an ``EventQueue`` about to hold an event); install the handler if we
    are in the main thread and SIGTERM has its default action. Cheap when already done."""
    key = id(queue)
    ref = _queues.get(key)
    if ref is None or ref() is not queue:

        def gone(ref: "weakref.ref[Any]", key: int = key) -> None:
            if _queues.get(key) is ref:
                del _queues[key]

        _queues[key] = weakref.ref(queue, gone)
    _install()


def forget(queue: Any) -> None:
    """Unregister a closed `queue`; the last one out restores SIGTERM's default action."""
    _queues.pop(id(queue), None)
    if not _queues:
        _uninstall()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install() -> None:
    if not _in_main_thread():
        return  # signal.signal works only there; such queues are not drained on SIGTERM
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (AttributeError, ValueError, OSError):  # no SIGTERM here, or not the main interpreter
        pass


def _uninstall() -> None:
    if not _in_main_thread():
        return  # left in place; with nothing to drain it only restores the default and re-raises
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (AttributeError, ValueError, OSError):
        pass


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    try:
        deadline = time.monotonic() + DRAIN_SECONDS
        for ref in list(_queues.copy().values()):
            queue = ref()
            if queue is None or not queue.in_owner_process:
                continue  # a forked child's copy: the parent writes those events
            try:
                queue.drain(deadline)
            except Exception:  # noqa: BLE001 - drain the others all the same
                pass
    finally:  # whatever happened, the process ends as SIGTERM ends it
        signal.raise_signal(signum)
