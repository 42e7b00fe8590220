"""A model loaded without its weights (what ``steerlab serve --engine vllm`` holds beside vLLM):
no weight in memory, the same fingerprint and artifact checks as the loaded model, the same rows,
and every path that would run the model refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

import steerlab
from steerlab.artifacts import shipped
from steerlab.core.artifact import load_artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.steerer import Steer, get_steerer
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import ModelMismatchError, ModelNotFoundError, SteerlabError
from steerlab.generation.engine import Engine
from steerlab.generation.rows import build_rows
from steerlab.models.loading import LoadedModel
from steerlab.models.weightless import load_weightless
from steerlab.service import SteerSpec
from steerlab.service.resolve import ArtifactStore, explain


@pytest.fixture(scope="module")
def shell() -> LoadedModel:
    return load_weightless(DEFAULT_MODEL)


def test_no_weight_is_loaded_and_the_fingerprint_equals_the_loaded_models(shell, real_lm) -> None:
    assert not shell.has_weights and real_lm.has_weights
    assert {p.device.type for p in shell.model.parameters()} == {"meta"}  # not one weight in memory
    assert sum(b.numel() for b in shell.model.buffers()) < 10_000  # buffers: rotary frequencies at most
    assert shell.fingerprint == ModelFingerprint(
        **{**real_lm.fingerprint.to_dict(), "name": shell.name})
    assert (shell.num_layers, shell.hidden_size) == (real_lm.num_layers, real_lm.hidden_size)


def test_artifacts_are_checked_and_rows_built_exactly_as_on_the_loaded_model(shell, real_lm, tmp_path) -> None:
    for name in ("sentiment-vec", "lmsteer-sentiment", "steerlm-smollm2"):
        art = load_artifact(shipped()[name].path)
        get_steerer(art.method).prepare(shell, Steer(art, 1.0))  # validated: fingerprint, layers, modules
    other = load_artifact(shipped()["sentiment-vec-qwen1.5b"].path)
    with pytest.raises(ModelMismatchError):
        get_steerer(other.method).prepare(shell, Steer(other, 1.0))
    vec = load_artifact(shipped()["sentiment-vec"].path)
    prompts = ["The movie was", [{"role": "user", "content": "Tell me about your day"}]]
    for chat in (False, True):
        a = build_rows(shell, prompts, Steer(vec, 2.0), chat=chat, system="Be brief." if chat else None)
        b = build_rows(real_lm, prompts, Steer(vec, 2.0), chat=chat, system="Be brief." if chat else None)
        assert [p.row.text for p in a] == [p.row.text for p in b]


def test_what_would_run_the_model_is_refused_by_name(shell) -> None:
    with pytest.raises(SteerlabError, match="--engine hf"):
        steerlab.generate(shell, "The movie was", max_new_tokens=2, progress=False)
    with pytest.raises(SteerlabError, match="own engine"):
        Engine(shell)
    with pytest.raises(SteerlabError, match="explaining text"):
        explain(shell, SteerSpec("lmsteer-sentiment", 1.0), "a lovely day", ArtifactStore())
    dglm = load_artifact(shipped()["dglm-smollm2"].path)
    with pytest.raises(SteerlabError, match="soft prompts"):
        build_rows(shell, ["The movie was"], Steer(dglm, 1.0))


def test_a_hub_model_is_read_from_the_cache_the_engine_filled(shell, tmp_path, monkeypatch) -> None:
    """``serve --engine vllm --model org/name``: vLLM downloads the model first; the weightless model
    then reads the cached snapshot (and never downloads)."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache"):
        load_weightless("some-org/some-model")
    repo = tmp_path / "models--some-org--some-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for f in Path(shell.source).iterdir():
        (snapshot / f.name).symlink_to(f)
    hub_lm = load_weightless("some-org/some-model")
    assert hub_lm.fingerprint.weights_hash == shell.fingerprint.weights_hash and not hub_lm.has_weights
