"""The decoding settings are one value, checked once, from the edge (JSON, the CLI, generate's
keywords) to every engine."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

import steerlab
from steerlab.errors import SteerlabError
from steerlab.generation import decoding as decoding_module
from steerlab.generation.decoding import NAMES, Decoding
from steerlab.generation.engine import Engine
from steerlab.service import ArtifactStore, GenerationRequest, resolve
from steerlab.service.jobs import build_jobs


def test_settings_are_checked_when_built_and_normalised() -> None:
    assert Decoding(stop="END").stop == ("END",) and Decoding(stop=["a", "b"]).stop == ("a", "b")
    assert Decoding(stop=None).stop == ()
    for bad, match in [({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": -1.0}, "temperature"),
                       ({"top_p": 0.0}, "top_p"), ({"top_k": -1}, "top_k"), ({"seed": 1.5}, "seed"),
                       ({"stop": [""]}, "stop"), ({"stop": [3]}, "stop"), ({"ignore_eos": "yes"}, "ignore_eos")]:
        with pytest.raises(SteerlabError, match=match):
            Decoding(**bad)
    with pytest.raises(AttributeError):
        Decoding().temperature = 1.0  # type: ignore[misc]  # frozen: checked once stays true


def test_rows_of_a_seeded_call_sample_from_their_own_seeds() -> None:
    d = Decoding(temperature=0.7, seed=5)
    assert [d.for_row(i).seed for i in range(3)] == [5, 6, 7]
    assert Decoding().for_row(3).seed is None


def test_a_request_keeps_its_settings_flat_in_json_and_round_trips() -> None:
    doc = {"prompts": ["hi"], "max_new_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 4, "seed": 3,
           "stop": ["\n"], "ignore_eos": True}
    req = GenerationRequest.from_dict(doc)
    assert req.decoding == Decoding(7, 0.5, 0.9, 4, 3, ("\n",), True)
    flat = req.to_dict()
    assert set(NAMES) <= set(flat) and "decoding" not in flat
    assert GenerationRequest.from_dict(json.loads(json.dumps(flat))) == req
    with pytest.raises(SteerlabError, match="unknown request field"):
        GenerationRequest.from_dict({"prompts": ["hi"], "decoding": {}})


def test_generate_takes_keywords_or_one_value_never_both(tiny_llama) -> None:
    kw = steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=4, progress=False)
    one = steerlab.generate(tiny_llama, ["The movie was"], decoding=Decoding(max_new_tokens=4), progress=False)
    assert kw == one
    with pytest.raises(SteerlabError, match="not both"):
        steerlab.generate(tiny_llama, ["x"], max_new_tokens=4, decoding=Decoding(), progress=False)


def test_sampling_settings_are_checked_once_from_request_to_engine(tiny_llama, monkeypatch) -> None:
    """Request → resolve → jobs (n choices) → engine: the settings are checked when the request is
    built, and never again."""
    calls: Counter[str] = Counter()
    real = decoding_module.check_sampling

    def counting(*args: Any) -> None:
        calls["check_sampling"] += 1
        real(*args)

    monkeypatch.setattr(decoding_module, "check_sampling", counting)
    request = GenerationRequest.from_dict({"prompts": ["The movie was"], "max_new_tokens": 3, "temperature": 0.8,
                                           "seed": 1, "model": tiny_llama.name})
    assert calls["check_sampling"] == 1
    resolved = resolve(request, ArtifactStore(shipped=False))
    jobs = build_jobs(tiny_llama, resolved, request.prompts, n=3)
    engine = Engine(tiny_llama).start()
    try:
        texts = [engine.submit(job).result(timeout=60)[0] for job in jobs]
    finally:
        engine.stop()
    assert [j.decoding.seed for j in jobs] == [1, 2, 3] and len(texts) == 3
    assert calls["check_sampling"] == 3  # the two seeded choices are new values: built (checked) once each


def test_a_request_carries_its_conversations_and_generate_answers_them(real_lm) -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."}]
    request = GenerationRequest.from_dict({"prompts": ["The movie was", chat], "max_new_tokens": 5})
    assert request.prompts[1] == chat
    resolved = resolve(request)
    jobs = build_jobs(real_lm, resolved, request.prompts)
    assert "Be brief." in jobs[1].text and "Name a fruit." in jobs[1].text  # through the chat template
    answer = steerlab.generate(real_lm, [chat], max_new_tokens=5, progress=False)
    same = steerlab.generate(real_lm, ["Name a fruit."], system="Be brief.", chat=True, max_new_tokens=5,
                             progress=False)
    assert answer == same
    with pytest.raises(SteerlabError, match="last message"):
        GenerationRequest.from_dict({"prompts": [[{"role": "assistant", "content": "hi"}]]})
