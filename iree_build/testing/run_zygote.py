"""The run workers' fork server: imports the runtime once, forks a worker in milliseconds.

A new Python process with ``iree.runtime`` and numpy takes 0.3 s or more to start,
longer than a test and too long to replace a worker lost to a crash between two
cases. This process imports them once (creating no device and no thread, which is
what makes forking safe) and forks a worker on each request.

Run as ``python -m iree_build.testing.run_zygote FD``: FD is a UNIX socket to the
run pool. A request is the line ``fork``; the answer is ``{"pid": N}`` with three
file descriptors attached (the worker's requests, replies and stderr pipes). When
a worker ends, ``{"exit": N, "code": C}`` (C as ``subprocess`` returncodes: a
negative signal number) follows. The server ends when the socket closes, that is
when the build process ends, and takes its workers with it (killed and reaped first,
so that none outlives a build that waits for the server; PR_SET_PDEATHSIG if it is
killed itself).

A command that starts it before anything else (``python -m iree_build test``) may fork
it instead (:func:`fork_server`): no second interpreter start, and its imports begin
while the command parses its arguments.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import sys

from iree_build.util.scratch import remove_scratch_of


def _worker(req_r: int, rep_w: int, err_w: int) -> None:
    """The child's side of a fork: become a run worker on these pipes, never return."""
    from iree_build.testing.run_worker import serve_loop
    from iree_build.util.child_process import die_with_parent

    os.dup2(err_w, 2)
    os.dup2(err_w, 1)  # native code printing to stdout must not corrupt the protocol
    os.close(err_w)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)  # a stop ends a worker, not its server
    signal.set_wakeup_fd(-1)
    die_with_parent()  # SIGINT: ignored already, as in the server
    code = 0
    try:
        serve_loop(os.fdopen(req_r, "r"), os.fdopen(rep_w, "w", buffering=1))
    except BaseException:  # noqa: BLE001 - report, then leave without running parent code
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _fork(sock: socket.socket, keep: list[int], live: set[int]) -> None:
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (req_w, rep_r, err_r, *keep):
            os.close(fd)
        sock.close()
        _worker(req_r, rep_w, err_w)
    live.add(pid)
    for fd in (req_r, rep_w, err_w):
        os.close(fd)
    try:
        socket.send_fds(sock, [json.dumps({"pid": pid}).encode() + b"\n"], [req_w, rep_r, err_r])
    finally:
        for fd in (req_w, rep_r, err_r):
            os.close(fd)


def _reap(sock: socket.socket, live: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        live.discard(pid)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if code < 0:  # killed (at its time limit, say): its scratch folders did not go with it
            remove_scratch_of(pid)
        sock.sendall(json.dumps({"exit": pid, "code": code}).encode() + b"\n")


EARLY: tuple[socket.socket, int] | None = None
"""The server :func:`fork_server` forked (our socket end, its PID), until the run pool
takes it."""


def fork_server() -> None:
    """Fork the fork server from this process (:data:`EARLY`), where that is safe: no
    other thread (a fork keeps only the calling one, and any lock another held), and
    every descriptor but the standard three closed in the child. Otherwise nothing: the
    run pool starts it as a program when it needs it."""
    global EARLY
    threading = sys.modules.get("threading")
    if (
        EARLY is not None
        or not os.path.isdir("/proc/self/fd")
        or (threading and threading.active_count() > 1)
    ):
        return
    ours, theirs = socket.socketpair()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # as start_worker does
    try:
        pid = os.fork()
        if pid == 0:  # the server: never returns into the command's code
            code = 1
            try:
                fd = theirs.fileno()
                for name in os.listdir("/proc/self/fd"):  # the command's own files stay its own
                    if int(name) > 2 and int(name) != fd:
                        try:
                            os.close(int(name))
                        except OSError:
                            pass
                for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)  # the command's own handlers are not the server's
                signal.set_wakeup_fd(-1)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
                code = main([str(fd)])
            except BaseException:  # noqa: BLE001 - e.g. no iree.runtime: the pool starts one that says so
                pass
            os._exit(code)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    theirs.close()
    EARLY = (ours, pid)
    atexit.register(_drop_early)


def _drop_early() -> None:
    """At exit, a server forked but never taken (the command stopped first, say at a bad
    argument) is killed and reaped: it does not outlive the command."""
    global EARLY
    early, EARLY = EARLY, None
    if early is not None:
        try:
            os.kill(early[1], signal.SIGKILL)
            os.waitpid(early[1], 0)
        except OSError:
            pass
        early[0].close()


def main(argv: list[str]) -> int:
    from iree_build.util.child_process import PARENT_ENV, ignore_interrupts

    ignore_interrupts()  # Ctrl-C is the build's to handle
    # So are SIGTERM and SIGHUP, sent to the whole process group: this server outlives its
    # workers, dead of the stop, long enough to say what they died of (the build tells a stop
    # from a crash by it), and ends when the build does (its socket closes), or is killed.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    os.environ[PARENT_ENV] = str(os.getpid())  # the workers' parent is this server
    sock = socket.socket(fileno=int(argv[0]))
    live: set[int] = set()
    try:
        return _serve(sock, live)
    except OSError:  # the build process went away (its end of the socket is closed)
        return 0
    finally:
        _end(live)


def _end(live: set[int]) -> None:
    """Workers still running when the build goes: killed, and reaped before this exits."""
    for pid in live:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in live:
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
        remove_scratch_of(pid)


def _serve(sock: socket.socket, live: set[int]) -> int:
    import iree_build.testing.worker_preload  # noqa: F401  (what every worker shares)

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the pipe
    sock.sendall(b'{"ready": true}\n')
    pending = b""
    while True:
        watched: list[socket.socket | int] = [sock, wake_r]
        ready, _, _ = select.select(watched, [], [])
        if wake_r in ready:
            os.read(wake_r, 512)
            _reap(sock, live)
        if sock in ready:
            data = sock.recv(4096)
            if not data:  # the build process is gone
                return 0
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip() == b"fork":
                    _fork(sock, [wake_r, wake_w], live)


if __name__ == "__main__":
    _code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_code)  # no interpreter teardown of numpy and the runtime: the build waits for this exit
