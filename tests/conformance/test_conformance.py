"""The contract every registered steering method must honour, on four tiny architectures.

The hook-level contract is tested on prepared steers (``steerlab.prepare``): methods that also steer
through the prompt (SteerLM, DGLM) are otherwise refused by ``apply``/``patch`` (tested last here).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import steerlab
from tests.conformance.factories import FACTORIES
from tests.helpers import hook_count, logits

METHOD_NAMES = steerlab.METHODS.names()  # built-ins (entry points) and the toy method registered by the factories


def test_every_method_has_a_factory() -> None:
    assert set(METHOD_NAMES) <= set(FACTORIES), "add a factory for each new method"


@pytest.fixture(params=METHOD_NAMES)
def steer(request, tiny):
    return FACTORIES[request.param](tiny)


def test_apply_changes_output_and_restores_exactly(tiny, steer) -> None:
    base = logits(tiny)
    hooks = hook_count(tiny.model)
    with steerlab.apply(tiny, steerlab.prepare(tiny, steer)):
        inside = logits(tiny)
    assert not torch.equal(inside, base)
    assert torch.equal(logits(tiny), base)
    assert hook_count(tiny.model) == hooks


def test_exception_inside_restores(tiny, steer) -> None:
    base = logits(tiny)
    with pytest.raises(RuntimeError, match="boom"):
        with steerlab.apply(tiny, steerlab.prepare(tiny, steer)):
            raise RuntimeError("boom")
    assert torch.equal(logits(tiny), base)


def test_nested_contexts_restore_in_order(tiny, steer) -> None:
    base = logits(tiny)
    with steerlab.apply(tiny, steerlab.prepare(tiny, steer)):
        outer = logits(tiny)
        with steerlab.apply(tiny, steerlab.prepare(tiny, dataclasses.replace(steer, strength=-steer.strength))):
            both = logits(tiny)
        assert torch.equal(logits(tiny), outer)
    assert not torch.equal(both, outer)
    assert torch.equal(logits(tiny), base)


def test_strength_zero_is_identity(tiny, steer) -> None:
    base = logits(tiny)
    with steerlab.apply(tiny, steerlab.prepare(tiny, dataclasses.replace(steer, strength=0.0))):
        assert torch.equal(logits(tiny), base)


def test_save_load_round_trip_is_exact_and_pickle_free(tiny, steer, tmp_path: Path) -> None:
    path = steer.artifact.save(tmp_path / "art")
    assert sorted(p.name for p in path.iterdir()) == ["steer_config.json", "steer_weights.safetensors"]
    for p in path.iterdir():
        assert not p.read_bytes().startswith(b"\x80"), "pickle protocol header found"
    loaded = steerlab.load_artifact(path)
    assert type(loaded) is type(steer.artifact)
    state_a, tensors_a = steer.artifact.to_state()
    state_b, tensors_b = loaded.to_state()
    assert state_a == state_b
    assert tensors_a.keys() == tensors_b.keys()
    assert all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)
    with steerlab.apply(tiny, steerlab.prepare(tiny, steer)):
        expected = logits(tiny)
    with steerlab.apply(tiny, steerlab.prepare(tiny, dataclasses.replace(steer, artifact=loaded))):
        assert torch.equal(logits(tiny), expected)


def test_failed_patch_installs_nothing(tiny, steer) -> None:
    hooks = hook_count(tiny.model)
    bad = dataclasses.replace(steer, options={"no_such_option": 1})
    with pytest.raises(steerlab.SteerlabError, match="no_such_option"):
        steerlab.patch(tiny, (steerlab.prepare(tiny, steer), bad))  # the first would install; nothing may
    assert hook_count(tiny.model) == hooks


def test_patch_handle_remove_is_idempotent(tiny, steer) -> None:
    base = logits(tiny)
    handle = steerlab.patch(tiny, steerlab.prepare(tiny, steer))
    assert handle.active
    handle.remove()
    handle.remove()
    assert not handle.active
    assert torch.equal(logits(tiny), base)


def test_prompt_steering_methods_are_refused_by_bare_apply(tiny, steer) -> None:
    steerer = steerlab.get_steerer(steer.artifact.method)
    hooks = hook_count(tiny.model)
    base = logits(tiny)
    if steerer.steers_prompt:
        with pytest.raises(steerlab.SteerlabError, match="steers through the prompt"):
            with steerlab.apply(tiny, steer):
                pass
        assert hook_count(tiny.model) == hooks
        handle = steerlab.patch(tiny, steerlab.prepare(tiny, steer))  # prepared: the caller owns the prompt
    else:
        handle = steerlab.patch(tiny, steer)  # hooks are the whole method: a bare steer is fine
    assert not torch.equal(logits(tiny), base)  # it steers
    handle.remove()
    assert hook_count(tiny.model) == hooks and torch.equal(logits(tiny), base)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_capability_flags_say_what_the_methods_override(name: str) -> None:
    from steerlab.core.steerer import Steerer

    cls = steerlab.METHODS.get(name).steerer_cls
    own = {m: getattr(cls, m) is not getattr(Steerer, m)
           for m in ("rewrite_prompt", "rewrite_formatted", "soft_prompt", "explain")}
    assert cls.steers_prompt == (own["rewrite_prompt"] or own["rewrite_formatted"] or own["soft_prompt"])
    assert cls.makes_soft_prompts == own["soft_prompt"]
    assert cls.explains == own["explain"]


def test_a_flag_declared_against_the_methods_is_refused_at_definition() -> None:
    from steerlab.core.steerer import Steerer

    with pytest.raises(TypeError, match="explains = True contradicts"):
        class Liar(Steerer):  # noqa: F841 - defining it is the test
            name = "liar"
            explains = True  # but no explain()
