"""Atomic file writes: a reader (or a rerun after SIGKILL) sees the old file or the new one, never half."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np


def write_atomic(path: Path, write: Callable[[Path], None], durable: bool = True) -> None:
    """Call write(tmp_path), fsync, then rename over `path`. durable=False skips the fsync: still whole
    after a killed process (the rename is atomic), not guaranteed after a power loss; for state rewritten
    many times a second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_writable_dir(path: Path) -> None:
    """Create `path` and write a file in it, or raise OSError: fail before hours of work, not after."""
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write_probe{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda p: p.write_bytes(data))


def write_json_atomic(path: Path, obj: Any, durable: bool = True) -> None:
    data = (json.dumps(obj, indent=2 if durable else None, sort_keys=False) + "\n").encode()
    write_atomic(path, lambda p: p.write_bytes(data), durable)


def write_npy_atomic(path: Path, array: np.ndarray) -> tuple[int, str]:
    """Atomically write a .npy (no pickle) straight from the array's memory; returns (bytes, sha256)."""
    array = np.ascontiguousarray(array)  # the header must describe the bytes we write: C order
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(array))
    parts = [head.getvalue(), memoryview(array).cast("B")]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            for part in parts:
                f.write(part)

    write_atomic(path, write)
    return sum(len(p) for p in parts), digest.hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")     # write_atomic's: .NAME.tmpPID


def remove_stale_tmp(root: Path) -> int:
    """Delete the temporaries write_atomic left when its process was killed; returns how many. Only names it
    writes (.NAME.tmpPID), and only those of processes that are gone: a user's `.vimrc.tmpl` stays, and so
    does a live writer's temp file."""
    n = 0
    for p in root.rglob(".*.tmp*"):
        m = TEMP_NAME.match(p.name)
        if m and p.is_file() and not pid_alive(int(m["pid"])):
            p.unlink()
            n += 1
    return n


def pid_alive(pid: int) -> bool:
    """Whether a process of this pid runs on this machine (another user's counts)."""
    if not isinstance(pid, int) or pid <= 0:       # 0 and -1 would name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # someone else's process
        return True
    return True
