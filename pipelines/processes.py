"""Worker processes that do not outlive the run that started them (even after ``kill -9``).

A pool worker blocks on its task queue; if the parent is killed it would wait forever. On Linux
``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill the worker when its parent dies;
elsewhere a daemon thread polls the parent and exits the worker when it is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import logging.handlers
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1


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


class _ToOwnLogger(logging.Handler):
    """Hands a worker's log record to the logger of the same name in this process, so it reaches the
    run's handlers (console, run.log) as if it had been logged here."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


def _init_logging_worker(parent: int, queue: Any, level: int) -> None:
    die_with_parent(parent)
    root = logging.getLogger()
    root.handlers = [logging.handlers.QueueHandler(queue)]
    root.setLevel(level)


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A "spawn" process pool whose workers end with this process and whose log records (a warning of the
    workbook writer, say) go to this process' handlers instead of being lost with the worker."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    listener = logging.handlers.QueueListener(queue, _ToOwnLogger())
    listener.start()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_logging_worker,
                               initargs=(os.getpid(), queue, logging.getLogger().getEffectiveLevel()))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        listener.stop()
