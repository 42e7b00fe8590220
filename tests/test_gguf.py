"""llama.cpp control-vector export / import: format, layer numbering, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import steerlab
from steerlab.errors import ArtifactError, ModelMismatchError
from steerlab.methods.vectors import SteeringVector, export_gguf, import_gguf


def test_round_trip_and_format(tiny_llama, tmp_path: Path) -> None:
    import gguf

    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({la: torch.randn(tiny_llama.hidden_size, generator=g) for la in (0, 1, 3)},
                         model=tiny_llama.fingerprint)
    with pytest.warns(UserWarning, match="layer 0"):
        path = export_gguf(vec, tmp_path / "v.gguf", strength=2.0)
    reader = gguf.GGUFReader(str(path))
    arch = bytes(reader.get_field("general.architecture").parts[-1]).decode()
    assert arch == "controlvector"
    assert bytes(reader.get_field("controlvector.model_hint").parts[-1]).decode() == "llama"
    assert int(reader.get_field("controlvector.layer_count").parts[-1][0]) == 2
    names = sorted(t.name for t in reader.tensors)
    assert names == ["direction.1", "direction.3"]  # block N → direction.N; no slot for block 0
    back = import_gguf(path, tiny_llama)
    assert back.layers == [1, 3]
    for la in (1, 3):
        assert torch.equal(back.directions[la], 2.0 * vec.directions[la])
    assert back.model == tiny_llama.fingerprint


def test_import_refuses_non_control_vector_gguf(tmp_path: Path) -> None:
    import gguf

    p = tmp_path / "model.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ArtifactError, match="not a control vector"):
        import_gguf(p)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"hello world, definitely not gguf")
    with pytest.raises(ArtifactError, match="not a GGUF file"):
        import_gguf(junk)


def test_import_checks_hidden_size(tiny_llama, tmp_path: Path) -> None:
    vec = SteeringVector({1: torch.ones(tiny_llama.hidden_size * 2)})
    path = export_gguf(vec, tmp_path / "wide.gguf")
    with pytest.raises(ModelMismatchError, match="hidden size"):
        import_gguf(path, tiny_llama)


def test_exported_vector_steers_like_the_original(tiny_llama, tmp_path: Path) -> None:
    vec = steerlab.extract(tiny_llama, [("good day", "bad day"), ("I love it", "I hate it")], layers=[1, 2])
    back = import_gguf(export_gguf(vec, tmp_path / "v.gguf"), tiny_llama)
    enc = tiny_llama.tokenizer(["The movie was"], return_tensors="pt")
    outs = []
    for v in (vec, back):
        with steerlab.apply(tiny_llama, steerlab.Steer(v, 3.0)), torch.no_grad():
            outs.append(tiny_llama.model(**enc).logits)
    assert torch.equal(outs[0], outs[1])
