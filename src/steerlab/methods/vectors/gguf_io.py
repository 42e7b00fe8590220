"""llama.cpp control vectors: export and import the GGUF format repeng and llama.cpp use.

Format: ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (model type) and
``controlvector.layer_count``, and one F32 tensor ``direction.{N}`` of size n_embd per layer.

Layer numbering: llama.cpp adds ``direction.N`` to the output of decoder block N (0-based), for
N >= 1 — there is no slot for block 0 (``llama_control_vector_apply`` starts at layer 1). That is
our ``site="block"`` layer N, so indices carry over unchanged and block 0 cannot be exported.
llama.cpp steers every position, like our ``positions="all"``, ``operator="add"``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from steerlab.core.atomic import atomic_file
from steerlab.errors import ArtifactError, LayerError, MissingDependencyError, ModelMismatchError, SteerlabError
from steerlab.methods.vectors.vector import SteeringVector
from steerlab.models.loading import LoadedModel

ARCH = "controlvector"


def _gguf():  # type: ignore[no-untyped-def]
    try:
        import gguf
    except ImportError:
        raise MissingDependencyError("GGUF support needs the 'gguf' package: pip install gguf") from None
    return gguf


def export_gguf(vector: SteeringVector, path: str | Path, *, strength: float = 1.0,
                model_hint: str | None = None) -> Path:
    """Write ``strength * vector`` as a llama.cpp control vector (atomic). Returns the path."""
    gguf = _gguf()
    if vector.site != "block":
        raise SteerlabError(f"llama.cpp control vectors steer the block output; this vector is at "
                            f"site {vector.site!r}")
    layers = [la for la in vector.layers if la >= 1]
    if 0 in vector.directions:
        warnings.warn("layer 0 has no slot in llama.cpp control vectors and was left out", stacklevel=2)
    if not layers:
        raise SteerlabError("nothing to export: llama.cpp control vectors cannot hold layer 0 alone")
    hint = model_hint or (vector.model.model_type if vector.model else "unknown")
    target = Path(path)
    with atomic_file(target) as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCH)
        writer.add_string(f"{ARCH}.model_hint", hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(layers))
        for layer in layers:
            data = (vector.directions[layer] * float(strength)).numpy().astype(np.float32)
            writer.add_tensor(f"direction.{layer}", data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return target


def import_gguf(path: str | Path, lm: LoadedModel | None = None, *, name: str | None = None) -> SteeringVector:
    """Read a llama.cpp / repeng control vector. With ``lm``, check sizes and bind it to that model."""
    gguf = _gguf()
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: no such file")
    try:
        reader = gguf.GGUFReader(str(p))
    except Exception as e:  # the reader raises ValueError/struct errors on non-GGUF input
        raise ArtifactError(f"{p} is not a GGUF file ({type(e).__name__}: {e})") from None
    arch = _string_field(reader, "general.architecture")
    if arch != ARCH:
        raise ArtifactError(f"{p} is a GGUF file but not a control vector (architecture {arch!r})")
    hint = _string_field(reader, f"{ARCH}.model_hint") or "unknown"
    directions = {}
    for t in reader.tensors:
        if not t.name.startswith("direction."):
            continue
        try:
            layer = int(t.name.split(".", 1)[1])
        except ValueError:
            raise ArtifactError(f"{p}: bad tensor name {t.name!r}") from None
        directions[layer] = torch.tensor(np.asarray(t.data, dtype=np.float32).reshape(-1))
    if not directions:
        raise ArtifactError(f"{p} holds no direction.N tensors")
    vec = SteeringVector(directions, site="block",
                         meta={"name": name or p.stem,
                               "provenance": {"imported_from": str(p), "model_hint": hint}})
    if lm is not None:
        if vec.hidden_size != lm.hidden_size:
            raise ModelMismatchError(f"{p} has directions of size {vec.hidden_size}; {lm.name} has "
                                     f"hidden size {lm.hidden_size}")
        bad = [la for la in vec.layers if la >= lm.num_layers]
        if bad:
            raise LayerError(f"{p} has layers {bad} but {lm.name} has {lm.num_layers} layers")
        vec.model = lm.fingerprint
    vec.check_tensors()
    return vec


def _string_field(reader: object, key: str) -> str | None:
    field = reader.get_field(key)  # type: ignore[attr-defined]
    if field is None or not len(field.parts):
        return None
    return bytes(field.parts[-1]).decode("utf-8", errors="replace")
