"""Where trial results and checkpoints live: a local dir, or a URI (s3://, gs://, file://) through pyarrow.fs."""

from __future__ import annotations

import posixpath
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from mer_search.core.errors import UserError


class StorageError(UserError, RuntimeError):
    """Storage that cannot be used; the message names it and why."""


class Storage:
    def __init__(self, where: str):
        self.where = where
        if "://" in where:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(where)
            except (ValueError, OSError) as e:   # pyarrow's ArrowInvalid is a ValueError
                raise StorageError(f"--storage {where}: {str(e).splitlines()[0]}") from None
        else:
            self.fs, self.root = None, str(Path(where).resolve())

    def join(self, name: str) -> str:
        """The path Ray is given (with `fs`) for an experiment inside this storage."""
        return str(Path(self.root) / name) if self.fs is None else posixpath.join(self.root, name)

    def is_local_dir(self, path: Path) -> bool:
        return self.fs is None and Path(self.root) == Path(path).resolve()

    def check_writable(self) -> None:
        fs = self._fs()
        probe = posixpath.join(self.root, ".mer-search-probe")
        try:
            fs.create_dir(self.root, recursive=True)
            with fs.open_output_stream(probe) as f:
                f.write(b"ok")
            fs.delete_file(probe)
        except (OSError, ValueError) as e:
            raise StorageError(f"storage {self.where} is not writable ({str(e).splitlines()[0][:160]})") from None

    def _fs(self):
        return self.fs or pafs.LocalFileSystem()

    def upload(self, local: Path, name: str) -> None:
        """Atomically: written beside the target, then moved over it, so a reader sees the old or the new file."""
        fs, dest = self._fs(), posixpath.join(self.root, name)
        tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
        with fs.open_output_stream(tmp) as f:
            f.write(Path(local).read_bytes())
        fs.move(tmp, dest)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Atomically, like upload."""
        fs, dest = self._fs(), posixpath.join(self.root, name)
        tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, dest)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            with self._fs().open_input_stream(posixpath.join(self.root, name)) as f:
                return f.read()
        except (FileNotFoundError, OSError):
            return None

    def delete(self, name: str) -> None:
        try:
            self._fs().delete_file(posixpath.join(self.root, name))
        except (FileNotFoundError, OSError):
            pass

    def exists(self, name: str) -> bool:
        return self._fs().get_file_info(posixpath.join(self.root, name)).type == pafs.FileType.File

    def download(self, name: str, local: Path) -> None:
        with self._fs().open_input_stream(posixpath.join(self.root, name)) as f:
            data = f.read()
        tmp = Path(local).with_name(Path(local).name + ".part")
        tmp.write_bytes(data)
        tmp.replace(local)
