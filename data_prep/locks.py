"""One writer per dir: an exclusive lock held for a process's lifetime.

`flock` on DIR/.lock: the OS drops it when the holder exits or is SIGKILLed, so a crashed driver never
blocks the resume that follows, while a second live driver on the same sweep dir, pipeline or run dir is
refused at once with who holds it. The file's content (pid, host, since) is only for that message; the
lock itself is the flock. On one machine, or a file system whose flock spans machines.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from data_prep.errors import UserError


class DirBusy(UserError, RuntimeError):
    """Another live process holds the dir; the message names it."""


class DirLock:
    NAME = ".lock"

    def __init__(self, directory: str | Path, what: str = "dir"):
        self.dir, self.what = Path(directory), what
        self.path = self.dir / self.NAME
        self._fd: int | None = None

    def acquire(self) -> "DirLock":
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise DirBusy(f"{self.dir}: this {self.what} is in use by {holder}; wait for it to end or stop it "
                          f"(a killed process frees it by itself)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    try:
        h = json.loads(raw.decode())
        return f"pid {h['pid']} on {h['host']} (since {h['since']})"
    except (ValueError, KeyError, UnicodeDecodeError):
        return "another process"
