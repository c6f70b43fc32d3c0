"""One run at a time per output folder: an advisory lock the scheduler can rely on."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from coverage.errors import CoverageError, OutputError


class LockedError(CoverageError, RuntimeError):
    """Another run holds the lock on this output folder."""


@contextlib.contextmanager
def run_lock(folder: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``folder/.bbcov.lock`` for the duration; wait up to ``wait_s`` seconds, then raise LockedError.

    The kernel releases the lock when the process dies (even by ``kill -9``), so a crashed
    run never blocks the next one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".bbcov.lock"
    try:  # never through a symlink: a planted link must not make us truncate another file
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise OutputError(f"{path}: cannot open the lock file ({exc.strerror}); it must be a plain file, "
                          "not a link") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise OutputError(f"{path}: the lock file is not a plain file of its own (hard link or special file); "
                          "remove it")
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(path)
                    raise LockedError(f"{folder}: another bbcov run is in progress ({holder}); "
                                      "try again later or use --wait SECONDS") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")})
                 .encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    return f"pid {info.get('pid', '?')} since {info.get('since', '?')}"
