"""Every bad input gets a clear steerlab error and leaves nothing half-written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import steerlab
from steerlab.errors import ArtifactError, DataError, LayerError, ModelMismatchError, ModelNotFoundError, SteerlabError
from steerlab.methods.vectors import SteeringVector
from tests.helpers import PAIRS, hook_count, make_tiny


@pytest.fixture
def vec(tiny_llama) -> SteeringVector:
    return steerlab.extract(tiny_llama, PAIRS, layers=[1, 2])


def test_unknown_model_name_suggests_close_match() -> None:
    with pytest.raises(ModelNotFoundError, match="smollm2-135m"):
        steerlab.load_model("smollm2-135")


def test_vector_from_another_model_is_refused(tiny_tokenizer, vec) -> None:
    other = make_tiny("qwen2", tiny_tokenizer)  # same hidden size, different weights
    with pytest.raises(ModelMismatchError, match="different weights"):
        steerlab.patch(other, vec)
    steerlab.patch(other, vec, allow_mismatch=True).remove()


def test_hidden_size_mismatch_is_refused_even_when_allowed(tiny_llama) -> None:
    wrong = SteeringVector({1: torch.ones(tiny_llama.hidden_size + 1)})
    with pytest.raises(ModelMismatchError, match="hidden size"):
        steerlab.patch(tiny_llama, wrong, allow_mismatch=True)


def test_layer_out_of_range(tiny_llama, vec) -> None:
    with pytest.raises(LayerError, match="out of range"):
        steerlab.extract(tiny_llama, PAIRS, layers=[7])
    hooks = hook_count(tiny_llama.model)
    with pytest.raises(LayerError, match="no layer"):
        steerlab.patch(tiny_llama, steerlab.Steer(vec, 1.0, {"layers": [3]}))
    assert hook_count(tiny_llama.model) == hooks


def test_nan_vector_cannot_be_saved_or_loaded(vec, tmp_path: Path) -> None:
    bad = SteeringVector({1: torch.tensor([math.nan] * vec.hidden_size)})
    with pytest.raises(ArtifactError, match="NaN"):
        bad.save(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    # a NaN smuggled into a saved file is caught on load
    from safetensors.torch import save_file

    path = vec.save(tmp_path / "v")
    save_file({"direction.1": bad.directions[1], "direction.2": vec.directions[2]},
              str(path / "steer_weights.safetensors"))
    with pytest.raises(ArtifactError, match="NaN"):
        steerlab.load_artifact(path)


def test_nonfinite_strength_rejected(vec) -> None:
    with pytest.raises(SteerlabError, match="finite"):
        steerlab.Steer(vec, float("inf"))


def test_truncated_and_corrupt_safetensors(vec, tmp_path: Path) -> None:
    path = vec.save(tmp_path / "v")
    weights = path / "steer_weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        steerlab.load_artifact(path)
    weights.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        steerlab.load_artifact(path)


def test_malformed_or_missing_config(vec, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such directory"):
        steerlab.load_artifact(tmp_path / "nowhere")
    path = vec.save(tmp_path / "v")
    (path / "steer_config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        steerlab.load_artifact(path)
    (path / "steer_config.json").write_text(json.dumps({"method": "vectorz", "config": {}, "format_version": 1}))
    with pytest.raises(SteerlabError, match="vectors"):
        steerlab.load_artifact(path)
    (path / "steer_config.json").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        steerlab.load_artifact(path)


def test_save_is_atomic_and_keeps_the_old_artifact_on_failure(vec, tmp_path: Path, monkeypatch) -> None:
    path = vec.save(tmp_path / "v")
    before = (path / "steer_config.json").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("steerlab.core.artifact.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        (2 * vec).save(path, overwrite=True)
    assert (path / "steer_config.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v"]  # no temporary leftovers


@pytest.mark.parametrize("content,match", [
    ("", "empty"),
    ("\n\n", "empty"),
    ('{"positive": "a"', "not valid JSON"),
    ('["a", "b"]', "JSON object"),
    ('{"positive": "", "negative": "b"}', "non-empty"),
    ('{"foo": 1}', "expected keys"),
    ('{"text": "a", "label": "maybe"}', "unknown label"),
    ('{"positive": "a", "negative": "b"}\n{"text": "c", "label": 1}', "mixes"),
    ('{"text": "a", "label": 1}\n{"text": "b", "label": 1}', "at least one positive and one negative"),
])
def test_malformed_jsonl(tmp_path: Path, content: str, match: str) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(content)
    with pytest.raises(DataError, match=match):
        steerlab.load_contrast(f)


def test_labelled_jsonl_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "good", "label": "positive"}\n{"text": "bad", "label": 0}\n'
                 '{"text": "fine", "label": true}\n')
    cs = steerlab.load_contrast(f)
    assert cs.positive == ["good", "fine"] and cs.negative == ["bad"] and not cs.paired


def test_builtin_sets_have_at_least_100_pairs() -> None:
    for name in ("sentiment", "formality"):
        cs = steerlab.as_contrast(name)
        assert cs.paired and len(cs.positive) >= 100 and len(set(cs.positive)) == len(cs.positive)


def test_unknown_option_and_operator(vec, tiny_llama) -> None:
    with pytest.raises(SteerlabError, match="Did you mean 'layers'"):
        steerlab.patch(tiny_llama, steerlab.Steer(vec, 1.0, {"layer": [1]}))
    with pytest.raises(SteerlabError, match="operator"):
        steerlab.patch(tiny_llama, steerlab.Steer(vec, 1.0, {"operator": "mul"}))
    with pytest.raises(SteerlabError, match="positions"):
        steerlab.patch(tiny_llama, steerlab.Steer(vec, 1.0, {"positions": "middle"}))
