"""The serialisable request and its one resolve(): JSON round-trips, validation before loading,
model and chat choice from artifact metadata, and the same output as calling generate directly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import steerlab
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import Decoding
from steerlab.service import ArtifactStore, GenerationRequest, SteerSpec, resolve, run
from tests.helpers import ADAPTER, PAIRS


@pytest.fixture
def vec_dir(tiny_llama, tmp_path: Path) -> Path:
    return steerlab.extract(tiny_llama, PAIRS, layers=[1, 2]).save(tmp_path / "v")


def test_request_round_trips_through_json() -> None:
    req = GenerationRequest.from_dict({
        "prompts": ["The film was"], "attributes": {"humor": 3}, "temperature": 0.7, "top_p": 0.9, "seed": 1,
        "steering": [{"artifact": "sentiment-vec", "strength": 6, "layers": [9]},
                     {"artifact": "ls", "strength": -3, "options": {"steer": 0}}]})
    assert req.steering[0] == SteerSpec("sentiment-vec", 6.0, {"layers": [9]})
    assert req.steering[1].options == {"steer": 0}
    again = GenerationRequest.from_dict(json.loads(json.dumps(req.to_dict())))
    assert again == req


@pytest.mark.parametrize("doc,match", [
    ({"prompts": "hi"}, "list of strings"),
    ({"prompts": []}, "non-empty"),
    ({"prompts": ["hi"], "steering": {"artifact": "x"}}, "list of steers"),
    ({"prompts": ["hi"], "steering": [{"strength": 1}]}, "needs 'artifact'"),
    ({"prompts": ["hi"], "steering": [{"artifact": "x", "strength": "big"}]}, "strength must be a number"),
    ({"prompts": ["hi"], "steering": [{"artifact": "x", "strength": 1e300}]}, "too large"),
    ({"prompts": ["hi"], "steering": [{"artifact": "x", "layers": [1], "options": {"layers": [2]}}]}, "both"),
    ({"prompts": ["hi"], "temperature": -1}, "temperature"),
    ({"prompts": ["hi"], "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompts": ["hi"], "seed": 1.5}, "seed"),
    ({"prompts": ["hi"], "stream": True}, "unknown request field"),
])
def test_bad_requests_are_refused_before_anything_loads(doc, match: str) -> None:
    with pytest.raises(SteerlabError, match=match):
        GenerationRequest.from_dict(doc)


def test_resolve_equals_direct_generate(tiny_llama, vec_dir: Path) -> None:
    req = GenerationRequest(["The movie was", "hey"], [SteerSpec(str(vec_dir), 6.0, {"layers": [1]})], model="tiny",
                            decoding=Decoding(max_new_tokens=6))
    resolved = resolve(req)
    assert resolved.model == "tiny" and resolved.chat is False
    direct = steerlab.generate(tiny_llama, ["The movie was", "hey"],
                               steerlab.Steer(steerlab.load_artifact(vec_dir), 6.0, {"layers": [1]}),
                               max_new_tokens=6, progress=False)
    assert run(tiny_llama, req, resolved, progress=False) == direct


def test_a_server_store_knows_names_only(vec_dir: Path) -> None:
    store = ArtifactStore({"sentiment": vec_dir}, allow_paths=False)
    assert store.get("sentiment") is store.get("sentiment")  # cached
    with pytest.raises(SteerlabError, match="Did you mean 'sentiment'"):
        store.get("sentimen")
    with pytest.raises(SteerlabError, match="unknown artifact"):
        store.get(str(vec_dir))  # a path is not a name


def test_options_are_checked_in_resolve(vec_dir: Path) -> None:
    req = GenerationRequest(["hi"], [SteerSpec(str(vec_dir), 1.0, {"layer": [1]})])
    with pytest.raises(SteerlabError, match="Did you mean 'layers'"):
        resolve(req)


def test_chat_default_comes_from_artifact_metadata() -> None:
    req = GenerationRequest(["Tell me about cats"], [SteerSpec(str(ADAPTER), 1.0)],
                            attributes={"humor": 4})
    resolved = resolve(req)
    assert resolved.chat is True and resolved.model == "smollm2-135m"
    assert resolve(GenerationRequest(["x"], [SteerSpec(str(ADAPTER))], chat=False)
                   ).chat is False
