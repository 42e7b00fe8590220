"""A request's steering is parsed and validated once, however many stages read it: resolve, the
row builder, the engine's admission, prefill and every re-install as rows join and leave."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest
import torch

import steerlab
from steerlab.core.steerer import Steerer, get_steerer
from steerlab.generation.decoding import Decoding
from steerlab.generation.engine import Engine
from steerlab.methods.steerlm.schema import AttributeSchema
from steerlab.methods.steerlm.sft import train_sft
from steerlab.service import ArtifactStore, GenerationRequest, SteerSpec, resolve
from steerlab.service.jobs import build_jobs
from tests.helpers import EXAMPLES, PAIRS


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Calls of every steerer's ``parse_options`` and ``validate``, and of the attribute-string
    parser, by name."""
    seen: Counter[str] = Counter()
    depth: Counter[str] = Counter()  # a subclass's validate calling the base's is one validation

    def counting(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen[name] += depth[name] == 0
            depth[name] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth[name] -= 1
        return wrapper

    for spec in (steerlab.METHODS.get(m) for m in steerlab.METHODS.names()):
        cls: type[Steerer] = spec.steerer_cls
        if "validate" in vars(cls):
            monkeypatch.setattr(cls, "validate", counting("validate", vars(cls)["validate"]))
    monkeypatch.setattr(Steerer, "validate", counting("validate", Steerer.validate))
    monkeypatch.setattr(Steerer, "parse_options", counting("parse", Steerer.parse_options))
    monkeypatch.setattr(AttributeSchema, "parse", counting("attribute_string", AttributeSchema.parse))
    return seen


def test_options_are_parsed_and_validated_once_per_request(tiny_llama, tmp_path, counts) -> None:
    lm = tiny_llama
    adapter = train_sft(lm, EXAMPLES, r=4, lora_alpha=8, n_steps=1, batch_size=2, max_length=120, progress=False)
    store = ArtifactStore({"vec": steerlab.extract(lm, PAIRS, layers=[1, 2]).save(tmp_path / "v"),
                           "adapter": adapter.save(tmp_path / "a")}, allow_paths=False, shipped=False)
    request = GenerationRequest(["The movie was", "Tell me a joke"],
                                [SteerSpec("vec", 4.0, {"layers": [1]}), SteerSpec("adapter", 1.0)],
                                attributes="humor:4", chat=False, model=lm.name, decoding=Decoding(max_new_tokens=6))
    engine = Engine(lm, max_batch=8).start()
    try:
        resolved = resolve(request, store)
        assert counts == {"parse": 2, "attribute_string": 1}  # each steer once; "humor:4" read once
        jobs = build_jobs(lm, resolved, request.prompts, n=3)  # 6 jobs: 2 prompts x 3 choices
        first = [engine.submit(job) for job in jobs[:3]]
        texts = [first[0].result(timeout=60)[0]]  # rows join and leave while others decode: re-installs
        rest = first[1:] + [engine.submit(job) for job in jobs[3:]]
        texts += [s.result(timeout=60)[0] for s in rest]
    finally:
        engine.stop()
    assert engine.stats.prefills >= 2
    # validated once per steer when the request met the model; nothing parsed again
    assert counts == {"parse": 2, "attribute_string": 1, "validate": 2}
    assert texts[0] == texts[1] == texts[2]  # greedy choices of one prompt agree


def test_generate_parses_each_distinct_steer_once(tiny_llama, counts) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2])
    steer = steerlab.Steer(vec, 4.0, {"layers": [1]})
    steerlab.generate(tiny_llama, ["a", "b", "c", "d", "e"], [steer, None, steer, steer, None],
                      max_new_tokens=3, batch_size=2, progress=False)  # three batches
    assert counts == {"parse": 1, "validate": 1}


def test_steers_prepared_apart_with_equal_options_share_one_application(tiny_llama) -> None:
    """Each request prepares its own steer; rows of one artifact with equal options must still be one
    application (a method's hooks run once per step, not once per distinct strength), with each
    row's own strength, and the steered logits equal those of one shared steer at those strengths."""
    from steerlab.core.plan import plan

    lm = tiny_llama
    vec = steerlab.extract(lm, PAIRS, layers=[1, 2])
    steerer = get_steerer(vec.method)
    rows = [[steerer.prepare(lm, steerlab.Steer(vec, s, {"layers": [1]}))] for s in (1.0, 2.0, -3.0)]
    rows.append([steerer.prepare(lm, steerlab.Steer(vec, 5.0, {"layers": [2]}))])  # other options
    rows.append([])
    planned = plan(rows)
    assert len(planned) == 2
    assert planned[0][1].strengths.tolist() == [1.0, 2.0, -3.0, 0.0, 0.0]
    assert planned[1][1].strengths.tolist() == [0.0, 0.0, 0.0, 5.0, 0.0]
    ids = lm.tokenizer(["The movie was"] * 5, return_tensors="pt").input_ids
    with steerlab.patch(lm, rows, batch_size=5):
        grouped = lm.model(ids).logits
    shared = steerlab.Steer(vec, 1.0, {"layers": [1]})
    one = [[dataclasses.replace(shared, strength=s)] for s in (1.0, 2.0, -3.0)]
    with steerlab.patch(lm, [*one, [steerlab.Steer(vec, 5.0, {"layers": [2]})], None], batch_size=5):
        plain = lm.model(ids).logits
    torch.testing.assert_close(grouped, plain, rtol=0, atol=0)
