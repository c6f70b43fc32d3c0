"""Worker processes that do not outlive the run that started them (even after ``kill -9``).

A pool worker blocks on its task queue; if the parent is killed it would wait forever. On Linux
``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill the worker when its parent dies;
elsewhere a daemon thread polls the parent and exits the worker when it is gone.

Pool workers are forked from a fork server (started once per process, see :data:`WORKER_PRELOAD`), so
the chain is run → fork server → workers: the fork server ends when the run ends (it reads EOF on
its pipe from the run), and its workers die with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import logging.handlers
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

PR_SET_PDEATHSIG = 1

#: Modules the fork server imports once, before it forks any worker: what the report's workers run
#: (matplotlib maps, workbook, GeoPackage). A "spawn" worker imported them itself, 2-3 s of CPU per
#: worker and report; a forked one starts with them loaded.
WORKER_PRELOAD = ("pipelines.report",)


def die_with_parent(parent: int | None = None) -> None:
    """Make this (worker) process end when ``parent`` (default: its current parent) ends."""
    parent = parent or os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the request took effect
                    os._exit(1)
                return
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="watch-parent").start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def die_with(pid: int) -> None:
    """Make this process end when process ``pid`` ends, which need not be its parent (a pool worker's
    parent is the fork server; the fork server only ends when its last client has ended, so a worker
    waiting on its task queue after ``kill -9`` of the run would keep both alive)."""
    try:
        fd = os.pidfd_open(pid)  # Linux ≥ 5.3: readable when the process has ended
    except (AttributeError, OSError):
        threading.Thread(target=_poll, args=(pid,), daemon=True, name="watch-run").start()
    else:
        threading.Thread(target=_wait_readable, args=(fd,), daemon=True, name="watch-run").start()


def _wait_readable(fd: int) -> None:
    select.select([fd], [], [])
    os._exit(1)


def _poll(pid: int) -> None:
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass  # alive, another user's (cannot happen for our own run, but is not "gone")
        time.sleep(1.0)


class _ToOwnLogger(logging.Handler):
    """Hands a worker's log record to the logger of the same name in this process, so it reaches the
    run's handlers (console, run.log) as if it had been logged here."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


def _init_logging_worker(run: int, queue: Any, level: int) -> None:
    die_with_parent()  # the fork server
    die_with(run)
    root = logging.getLogger()
    root.handlers = [logging.handlers.QueueHandler(queue)]
    root.setLevel(level)


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers end with this process and whose log records (a warning of the
    workbook writer, say) go to this process' handlers instead of being lost with the worker.

    Workers come from the fork server (``forkserver``: no threads of this process are forked, unlike
    ``fork``), which has imported :data:`WORKER_PRELOAD`."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(WORKER_PRELOAD))  # read when the fork server starts (first pool)
    queue = ctx.Queue()
    listener = logging.handlers.QueueListener(queue, _ToOwnLogger())
    listener.start()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_logging_worker,
                               initargs=(os.getpid(), queue, logging.getLogger().getEffectiveLevel()))
    # The first submit waits until the fork server has imported WORKER_PRELOAD (1-2 s): start the
    # workers from a thread, so the caller's first work that needs no worker overlaps with it.
    warm = threading.Thread(target=_start_workers, args=(pool, workers), daemon=True, name="start-workers")
    warm.start()
    try:
        yield pool
    finally:
        warm.join()
        pool.shutdown(wait=True, cancel_futures=True)
        listener.stop()


def _start_workers(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start the pool's worker processes (each submit starts one while none is idle)."""
    for _ in range(workers):
        pool.submit(int)


T = TypeVar("T")


def _forked_child(send: Any, job: Callable[[], T]) -> None:
    die_with_parent()
    try:
        send.send((True, job()))
    except BaseException:  # every failure goes back to the parent, which raises it
        send.send((False, traceback.format_exc()))
    finally:
        send.close()


def run_shared(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``jobs[0]`` in this process and every other job in a process forked from it, at the same
    time; return their results in order (small values: they come back pickled).

    For work on large in-memory data that a pool would have to pickle to each worker (the atlas's
    pages read every table and the map geometry): a forked child has it all already, copy-on-write
    (``gc.freeze`` keeps the collector from touching, hence copying, the parent's objects). Its
    threads are not forked; a job must not use this process' pools or queues (the pages only render
    and write files). A child dies with this process; its failure is raised here with its traceback.
    """
    ctx = multiprocessing.get_context("fork")
    children = []
    gc.freeze()
    try:
        for job in jobs[1:]:
            recv, send = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_forked_child, args=(send, job), daemon=True, name="bbcov-share")
            child.start()
            send.close()
            children.append((child, recv))
    finally:
        gc.unfreeze()
    try:
        results = [jobs[0]()] if jobs else []
        for child, recv in children:
            try:
                ok, value = recv.recv()
            except EOFError:
                child.join()
                ok, value = False, f"the process ended without a result (exit code {child.exitcode})"
            child.join()
            if not ok:
                raise RuntimeError(f"a forked share of the work failed:\n{value}")
            results.append(value)
        return results
    finally:
        for child, recv in children:
            if child.is_alive():
                child.kill()
                child.join()
            recv.close()


def reset_peak_rss() -> bool:
    """Start this process' peak RSS (``VmHWM``) afresh, so :func:`peak_rss` tells one task's peak (Linux;
    False where it cannot)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss() -> int | None:
    """This process' peak resident memory in bytes since start or :func:`reset_peak_rss` (None off Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def release_memory() -> None:
    """Hand memory that was freed back to the system: Arrow's pool keeps freed blocks, and so does the C
    heap (``malloc_trim``, glibc); a worker that has finished a large partition otherwise keeps its peak
    while it waits or computes a small one, and partitions side by side are bounded by what they hold."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
