"""Untrusted input is handled here: worker processes with a time and a memory limit.

verovio (C++) aborts or segfaults on some ABC and MusicXML; music21 can spend minutes and
gigabytes on a short text (additive meters, huge note lengths, odd tempi). Inside the server
process either one would stall or kill every visitor's session. Work on user input that can
do so runs in a worker instead::

    from composer import sandbox
    pages = sandbox.run("composer.render.viz:score_svg", xml, timeout=10)

A worker is a plain ``python -c`` child process (not a fork of the server, which holds
threads and locks), started once and reused. It lives under ``RLIMIT_AS`` (memory) and is
killed when a call passes its time limit; a worker that dies, times out or runs out of
memory is replaced, and the caller gets a :class:`~composer.errors.ComposerError` with a
one-line message. A :class:`ComposerError` raised inside the worker reaches the caller as it
is; any other exception becomes a :class:`SandboxError` that names it.

See ``docs/ARCHITECTURE.md`` for where this sits in the house.
"""
from __future__ import annotations

import importlib
import logging
import os
import queue
import subprocess
import sys
import threading
from multiprocessing.connection import Connection, Pipe
from pathlib import Path

from composer.errors import ComposerError

log = logging.getLogger(__name__)

#: Seconds one call may take (the issue's "no request holds a worker for more than 10 s").
DEFAULT_TIMEOUT = 10.0
#: Address space a worker may map, in MiB.
DEFAULT_MEMORY_MB = 1536
#: Workers run at most this many calls at once (this is a 2-core machine's worth).
DEFAULT_WORKERS = 2
#: Workers run at a lower CPU priority: what they do (scores, ABC checks) is slow and can
#: wait, while the server's live path (a slider move's audio and roll) cannot.
WORKER_NICE = 5
#: Seconds a new worker may take to import what it preloads.
START_TIMEOUT = 60.0
#: Modules a worker imports before it says it is ready, so that the first call's time limit
#: is spent on the call, not on importing music21.
PRELOAD = ("composer.music.abc", "composer.render.viz", "verovio", "music21")


class SandboxError(ComposerError):
    """A call on untrusted input failed: crashed, timed out, ran out of memory or raised."""


class SandboxTimeout(SandboxError):
    """The call took longer than its time limit and was stopped."""


class SandboxCrash(SandboxError):
    """The worker died during the call (abort, segfault or out of memory)."""


class _Worker:
    """One child process and the connection to it."""

    def __init__(self, memory_mb: int):
        parent, child = Pipe(duplex=True)
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        code = f"import composer.sandbox as s; s._serve({child.fileno()}, {int(memory_mb)})"
        self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=[child.fileno()], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        child.close()
        self.conn: Connection = parent
        if not self.conn.poll(START_TIMEOUT):
            self.kill()
            raise SandboxError("a worker process did not start in time")
        try:
            self.conn.recv()  # "ready"
        except (EOFError, OSError):
            self.kill()
            raise SandboxError("a worker process could not start") from None

    def call(self, target: str, args: tuple, kwargs: dict, timeout: float):
        self.conn.send((target, args, kwargs))
        if not self.conn.poll(timeout):
            self.kill()
            raise SandboxTimeout(f"took longer than {timeout:g} s and was stopped")
        try:
            status, payload = self.conn.recv()
        except (EOFError, OSError):
            code = self.kill()
            raise SandboxCrash("crashed" + (f" (signal {-code})" if code and code < 0 else "")) from None
        if status == "ok":
            return payload
        raise payload

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill that does not take
            code = None
        self.conn.close()
        return code


class Sandbox:
    """A pool of worker processes for untrusted input.

    Parameters
    ----------
    workers : int
        At most this many calls run at once; further callers wait (up to their timeout).
    memory_mb : int
        Address-space limit of each worker.
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, memory_mb: int = DEFAULT_MEMORY_MB):
        self.memory_mb = memory_mb
        self._slots = threading.BoundedSemaphore(workers)
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()

    def run(self, target: str, *args, timeout: float = DEFAULT_TIMEOUT, what: str = "this input", **kwargs):
        """Call ``module:function`` with ``args`` in a worker and return its result.

        Arguments and result travel by pickle, so pass bytes and text, not open objects.

        Raises
        ------
        ComposerError
            Raised inside the worker (passed through as it is), or a :class:`SandboxError`
            when the call crashed, timed out, ran out of memory or raised anything else;
            its message starts with ``what``.
        """
        if not self._slots.acquire(timeout=timeout):
            raise SandboxError(f"{what}: the server is busy; try again in a moment")
        worker = None
        try:
            worker = self._take()
            result = worker.call(target, args, kwargs, timeout)
        except SandboxError as exc:
            worker = None  # killed inside call(): start its replacement now, in the background,
            self._replace()  # so the next caller does not wait for music21 and verovio to load
            raise type(exc)(f"{what}: {exc}") from None
        except ComposerError:
            raise
        finally:
            if worker is not None and worker.alive():
                self._idle.put(worker)
            self._slots.release()
        return result

    def warm(self, n: int = 1) -> None:
        """Start ``n`` workers now (in the background at app start) so first calls are fast."""
        for _ in range(n):
            self._idle.put(_Worker(self.memory_mb))

    def _replace(self) -> None:
        def start():
            try:
                self._idle.put(_Worker(self.memory_mb))
            except SandboxError:
                log.warning("a replacement sandbox worker did not start")
        threading.Thread(target=start, daemon=True, name="sandbox-replace").start()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                return

    def _take(self) -> _Worker:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return _Worker(self.memory_mb)
            if worker.alive():
                return worker
            worker.kill()


_POOL: Sandbox | None = None
_POOL_LOCK = threading.Lock()


def pool() -> Sandbox:
    """The process-wide pool (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = Sandbox()
        return _POOL


def run(target: str, *args, timeout: float = DEFAULT_TIMEOUT, what: str = "this input", **kwargs):
    """:meth:`Sandbox.run` on the process-wide pool."""
    return pool().run(target, *args, timeout=timeout, what=what, **kwargs)


def _resolve(target: str):
    module, _, name = target.partition(":")
    if not module.startswith("composer."):
        raise ValueError(f"not a Composer function: {target!r}")
    return getattr(importlib.import_module(module), name)


def _serve(fd: int, memory_mb: int) -> None:  # pragma: no cover - runs in the child
    """The worker's loop: receive (target, args, kwargs), send ("ok", result) or ("err", exc)."""
    import resource
    import warnings
    warnings.simplefilter("ignore")
    limit = int(memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.nice(WORKER_NICE)
    conn = Connection(fd)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    conn.send("ready")
    while True:
        try:
            target, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            out = ("ok", _resolve(target)(*args, **kwargs))
        except ComposerError as exc:
            out = ("err", exc)
        except MemoryError:
            out = ("err", SandboxError("ran out of memory"))
        except RecursionError:
            out = ("err", SandboxError("is nested too deeply"))
        except Exception as exc:  # third-party code on user input raises many kinds
            msg = str(exc).strip().split("\n")[0][:200]
            out = ("err", SandboxError(f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__))
        try:
            conn.send(out)
        except Exception as exc:  # an unpicklable result or exception
            conn.send(("err", SandboxError(f"result could not be returned ({type(exc).__name__})")))
