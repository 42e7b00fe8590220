"""Packaged-model plumbing: locating parts in installed packages, joining, sha256 verification."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from steerlab.errors import ArtifactError, ModelNotFoundError
from steerlab.models import packaged
from steerlab.models.packaged import PackagedModel, materialize


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch):
    """Two importable packages each holding one part of a 'model' file."""
    chunks = [b"GGUF-part-one|", b"part-two"]
    for i, chunk in enumerate(chunks, start=1):
        pkg = tmp_path / "site" / f"fake_model_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("STEERLAB_CACHE", str(tmp_path / "cache"))
    yield b"".join(chunks)
    for i in (1, 2):
        sys.modules.pop(f"fake_model_part{i}", None)


def _entry(sha: str | None) -> PackagedModel:
    return PackagedModel("fake", "test", (("fake_model_part1", "data/part1.bin"),
                                          ("fake_model_part2", "data/part2.bin")), "pip install fake", sha)


def test_parts_are_joined_in_order_and_verified(fake_parts) -> None:
    good = hashlib.sha256(fake_parts).hexdigest()
    path = materialize(_entry(good))
    assert path.read_bytes() == fake_parts
    assert path.parent == packaged.cache_root() / "gguf"


def test_wrong_sha256_leaves_no_file(fake_parts) -> None:
    with pytest.raises(ArtifactError, match="sha256"):
        materialize(_entry("0" * 64))
    assert not (packaged.cache_root() / "gguf" / "fake.gguf").exists()


def test_missing_wheel_names_the_install_command() -> None:
    entry = PackagedModel("nope", "test", (("no_such_pkg_xyz", "a.bin"),), "pip install no-such-pkg")
    with pytest.raises(ModelNotFoundError, match="pip install no-such-pkg"):
        materialize(entry)


def test_status_lists_every_packaged_model() -> None:
    names = [r["name"] for r in packaged.status()]
    assert names == list(packaged.PACKAGED)
