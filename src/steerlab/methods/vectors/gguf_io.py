"""llama.cpp control vectors: export and import the GGUF format repeng and llama.cpp use.

Format: ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (model type) and
``controlvector.layer_count``, and one F32 tensor ``direction.{N}`` of size n_embd per layer.

Layer numbering: llama.cpp adds ``direction.N`` to the output of decoder block N (0-based), for
N >= 1 — there is no slot for block 0 (``llama_control_vector_apply`` starts at layer 1). That is
our ``site="block"`` layer N, so indices carry over unchanged and block 0 cannot be exported.
llama.cpp steers every position, like our ``positions="all"``, ``operator="add"``.

Import accepts exactly what llama.cpp's loader (``common_control_vector_load_one``) accepts, and
refuses the rest with the reason it gives: every tensor must be named ``direction.N`` with N >= 1
(llama.cpp has no slot for block 0 and fails on any other tensor name), be F32 and 1-D, and all
directions must have one size. One stricter rule: N must be plain digits (llama.cpp's ``stoi``
would read ``direction.3abc`` as layer 3, which we refuse as a malformed name).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steerlab.core.atomic import atomic_file
from steerlab.core.model import LoadedModel
from steerlab.core.validate import check_tensor_values, finite
from steerlab.errors import ArtifactError, LayerError, MissingDependencyError, ModelMismatchError, SteerlabError
from steerlab.methods.vectors.vector import SteeringVector

ARCH = "controlvector"


def _gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise MissingDependencyError("GGUF support needs the 'gguf' package: pip install gguf") from None
    return gguf


def export_gguf(vector: SteeringVector, path: str | Path, *, strength: float = 1.0,
                model_hint: str | None = None, overwrite: bool = False) -> Path:
    """Write ``strength * vector`` as a llama.cpp control vector (atomic). Returns the path.

    An existing file is replaced only with ``overwrite=True``; a folder never.
    """
    gguf = _gguf()
    strength = finite("strength", strength)
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
    scaled = {la: vector.directions[la] * strength for la in layers}
    for la, t in scaled.items():
        check_tensor_values(f"direction.{la} at strength {strength:g}", t)
    with atomic_file(target, overwrite=overwrite, what="GGUF control vector") as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCH)
        writer.add_string(f"{ARCH}.model_hint", hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(layers))
        for layer in layers:
            data = scaled[layer].numpy().astype(np.float32)
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
    directions: dict[int, torch.Tensor] = {}
    for t in reader.tensors:
        prefix, _, index = t.name.partition(".")
        if prefix != "direction" or not index.isdigit():
            raise ArtifactError(f"{p}: tensor {t.name!r} is not a direction.N tensor (llama.cpp rejects the file)")
        layer = int(index)
        if layer == 0:
            raise ArtifactError(f"{p}: direction.0 has no slot in llama.cpp control vectors (layers start at 1); "
                                "llama.cpp rejects the file")
        if layer in directions:
            raise ArtifactError(f"{p}: {t.name} appears twice")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise ArtifactError(f"{p}: {t.name} is {t.tensor_type.name}; llama.cpp control vectors must be F32")
        if any(int(d) != 1 for d in t.shape[1:]):  # ggml_n_dims: trailing 1s do not count
            raise ArtifactError(f"{p}: {t.name} has shape {[int(d) for d in t.shape]}; control vector directions "
                                "must be 1-D (llama.cpp rejects the file)")
        directions[layer] = torch.tensor(np.asarray(t.data, dtype=np.float32).reshape(-1))
    if len({v.shape[0] for v in directions.values()}) > 1:
        raise ArtifactError(f"{p}: directions differ in size; llama.cpp rejects the file")
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
