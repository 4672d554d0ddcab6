"""Whether the process was asked to stop (Ctrl-C, SIGTERM, SIGHUP), for threads that wait.

SCons catches SIGINT/SIGTERM/SIGHUP during a build, stops handing out work and
then waits for the actions already running. An action waiting on a network peer
or a worker process would keep the build alive until that wait ends. So the
signal is also written (by Python's own C-level handler) to a wakeup pipe that
a watcher thread reads: :func:`interrupted` turns true at once, whichever Python
handler SCons has installed, and waits that poll it stop within a fraction of a
second. Nothing of SCons is imported or changed here.
"""

from __future__ import annotations

import os
import signal
import threading

STOPPING = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
# Signals that stop a process from outside (a person, a CI timeout, the OOM killer): a worker
# dead of one of these did not crash.
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGKILL", "SIGQUIT")
POLL = 0.1  # seconds between looks at the flag in a polling wait

_stop = threading.Event()
_watching = False
_lock = threading.Lock()


def interrupted() -> bool:
    """A stopping signal arrived (after :func:`watch`), or :func:`set_interrupted` was called."""
    return _stop.is_set()


_callbacks: list = []


def on_interrupt(callback) -> None:
    """Call ``callback()`` (from the watcher thread) when a stop arrives: work that waits on a
    child process (a compile) cannot poll, so its child is stopped for it."""
    _callbacks.append(callback)


def set_interrupted(signum: int = signal.SIGINT) -> None:
    global _signal
    first = not _stop.is_set()
    _signal = signum
    _stop.set()
    if first:
        for callback in list(_callbacks):
            try:
                callback()
            except Exception:  # noqa: BLE001 - stopping must go on
                pass


_signal = 0


def which_signal() -> str:
    """``SIGINT``/``SIGTERM``/``SIGHUP`` of the stop, or ''."""
    return signal.Signals(_signal).name if _signal else ""


def watch() -> bool:
    """Start watching (main thread only; once). False where it cannot: not the main
    thread, or another wakeup fd is set already (asyncio in the main thread)."""
    global _watching
    with _lock:
        if _watching:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:
            os.close(r)
            os.close(w)
            return False
        if previous != -1:  # someone else's: give it back
            signal.set_wakeup_fd(previous)
            os.close(r)
            os.close(w)
            return False
        _watching = True
    threading.Thread(target=_read, args=(r,), daemon=True, name="iree-interrupt-watch").start()
    return True


def _read(fd: int) -> None:
    while True:
        try:
            data = os.read(fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in STOPPING:
                set_interrupted(signum)


def stop_noticed(grace: float = 1.0) -> bool:
    """Whether the process is interrupted, given ``grace`` seconds to notice: called when a
    worker died of a stop signal, which a terminal's Ctrl-C or a CI's SIGTERM sends to the
    whole process group at once; the worker may be seen dead before the watcher thread
    has read this process' own signal."""
    import time

    deadline = time.monotonic() + grace
    while not interrupted() and time.monotonic() < deadline:
        time.sleep(0.01)
    return interrupted()


def wait_event(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)`` that also returns (False) as soon as the process is interrupted."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while not event.is_set():
        if interrupted():
            return False
        left = POLL if deadline is None else min(POLL, deadline - time.monotonic())
        if left <= 0:
            return False
        event.wait(left)
    return True
