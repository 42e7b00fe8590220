"""Positions are absolute (identical with and without KV cache); per-row steering in one batch
equals each row generated alone."""

from __future__ import annotations

import pytest
import torch

import steerlab
from steerlab.methods.vectors import SteeringVector


def _vec(lm, seed: int, layers=(1, 2)) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({la: 3 * torch.randn(lm.hidden_size, generator=g) for la in layers},
                          model=lm.fingerprint)


def _greedy(lm, prompts, steering, batch_size=1, use_cache=True, n=8):
    enc = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    handle = steerlab.patch(lm, steering, batch_size=batch_size)
    try:
        with torch.no_grad():
            out = lm.model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                    use_cache=use_cache, pad_token_id=lm.tokenizer.pad_token_id,
                                    temperature=None, top_p=None, top_k=None)
    finally:
        handle.remove()
    return out[:, enc["input_ids"].shape[1]:]


@pytest.mark.parametrize("positions", ["all", "prompt", "generated", 3])
def test_same_greedy_output_with_and_without_kv_cache(tiny, positions) -> None:
    steer = steerlab.Steer(_vec(tiny, 0), 2.0, {"positions": positions})
    prompts = ["The movie was wonderful", "hey"]
    cached = _greedy(tiny, prompts, steer, use_cache=True)
    uncached = _greedy(tiny, prompts, steer, use_cache=False)
    assert torch.equal(cached, uncached)


def test_position_rules_select_the_right_tokens(tiny_llama) -> None:
    """'prompt' leaves generated positions untouched and 'generated' leaves the prompt untouched."""
    lm = tiny_llama
    vec = _vec(lm, 1)
    prompts = ["The movie was wonderful"]
    base = _greedy(lm, prompts, None)
    gen_only = _greedy(lm, prompts, steerlab.Steer(vec, 4.0, {"positions": "generated"}))
    # the first new token is predicted from the (unsteered) prompt, so it matches the base
    assert gen_only[0, 0] == base[0, 0]
    prompt_only = _greedy(lm, prompts, steerlab.Steer(vec, 4.0, {"positions": "prompt"}))
    everything = _greedy(lm, prompts, steerlab.Steer(vec, 4.0, {"positions": "all"}))
    assert prompt_only[0, 0] == everything[0, 0]


def test_per_row_batch_equals_rows_alone(tiny) -> None:
    a, b = _vec(tiny, 2), _vec(tiny, 3, layers=(0, 3))
    prompts = ["The movie was wonderful and", "hey", "Could you please send", "A quick brown fox jumps"]
    rows = [steerlab.Steer(a, 2.0), None, steerlab.Steer(a, -2.0, {"positions": "generated"}),
            (steerlab.Steer(a, 1.0), steerlab.Steer(b, 1.5, {"layers": [3]}))]
    batched = steerlab.generate(tiny, prompts, steering=rows, max_new_tokens=8)
    alone = [steerlab.generate(tiny, [p], steering=[r], max_new_tokens=8)[0] for p, r in zip(prompts, rows)]
    assert batched == alone
    assert len(set(batched)) > 1


def test_per_row_list_must_match_prompts(tiny_llama) -> None:
    with pytest.raises(steerlab.SteerlabError, match="per-row"):
        steerlab.generate(tiny_llama, ["a", "b"], steering=[None], max_new_tokens=2)


def test_sampling_is_reproducible_with_a_seed(tiny_llama) -> None:
    kw = {"max_new_tokens": 6, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    assert steerlab.generate(tiny_llama, ["The movie"], **kw) == steerlab.generate(tiny_llama, ["The movie"], **kw)


def test_stop_strings_cut_the_output(tiny_llama) -> None:
    full = steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=12, ignore_eos=True)[0]
    assert len(full) >= 4, full  # 12 byte-level tokens, EOS ignored
    stop = full[2:4]
    cut = steerlab.generate(tiny_llama, ["The movie was"], max_new_tokens=12, stop=[stop], ignore_eos=True)[0]
    assert stop not in cut and full.startswith(cut)


def test_generation_batch_size_comes_from_the_environment(tiny_llama, monkeypatch) -> None:
    import importlib

    gen = importlib.import_module("steerlab.generation.generate")  # the module, not the function
    sizes: list[int] = []
    real = gen._generate_chunk

    def spy(lm, rows, *args, **kw):  # type: ignore[no-untyped-def]
        sizes.append(len(rows))
        return real(lm, rows, *args, **kw)

    monkeypatch.setattr(gen, "_generate_chunk", spy)
    monkeypatch.setenv("STEERLAB_GEN_BATCH", "2")
    steerlab.generate(tiny_llama, ["a", "b", "c"], max_new_tokens=2, progress=False)
    assert sizes == [2, 1]
    sizes.clear()
    steerlab.generate(tiny_llama, ["a", "b", "c"], max_new_tokens=2, batch_size=3, progress=False)
    assert sizes == [3]  # an explicit batch_size wins
    monkeypatch.setenv("STEERLAB_GEN_BATCH", "0")
    with pytest.raises(steerlab.SteerlabError, match="batch_size"):
        steerlab.generate(tiny_llama, ["a"], max_new_tokens=2, progress=False)


def test_load_model_device_comes_from_the_environment(tiny_llama, tmp_path, monkeypatch) -> None:
    tiny_llama.model.save_pretrained(tmp_path)
    tiny_llama.tokenizer.save_pretrained(tmp_path)
    monkeypatch.setenv("STEERLAB_DEVICE", "meta")  # any device torch knows; meta needs no memory
    assert steerlab.load_model(str(tmp_path)).device.type == "meta"
    monkeypatch.delenv("STEERLAB_DEVICE")
    assert steerlab.load_model(str(tmp_path)).device.type == "cpu"
