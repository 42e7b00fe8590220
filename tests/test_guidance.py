"""Classifier-free guidance: exact log-prob math, scale 1 = plain decoding, per-row batching,
restore, and clear errors."""

from __future__ import annotations

import pytest
import torch

import steerlab
from steerlab.generation.decode import decode
from steerlab.generation.decoding import Decoding
from steerlab.generation.guidance import guided_log_probs, guided_merge
from steerlab.methods.vectors import SteeringVector
from tests.helpers import hook_count


def _vec(lm, seed: int = 0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({la: 3 * torch.randn(lm.hidden_size, generator=g) for la in (1, 2)},
                          model=lm.fingerprint)


def _guided(lm, prompts, steer, scale, n=6, ref=None):
    ref = ref or [None] * len(prompts)
    ready = [steerlab.prepare(lm, steer)] * len(prompts) + [r and steerlab.prepare(lm, r) for r in ref]
    handle = steerlab.patch(lm, ready, batch_size=2 * len(prompts))
    try:
        return decode(lm, list(prompts) * 2, Decoding(max_new_tokens=n), branches=2, merge=guided_merge(scale))
    finally:
        handle.remove()


def test_guided_log_probs_is_ref_plus_scaled_difference() -> None:
    g = torch.Generator().manual_seed(0)
    cond, ref = torch.randn(3, 11, generator=g), torch.randn(3, 11, generator=g)
    out = guided_log_probs(cond, ref, 2.5)
    lc, lr = torch.log_softmax(cond, -1), torch.log_softmax(ref, -1)
    assert torch.allclose(out, lr + 2.5 * (lc - lr))
    assert torch.allclose(guided_log_probs(cond, ref, 1.0), lc, atol=1e-6)
    assert torch.allclose(guided_log_probs(cond, ref, 0.0), lr)


def test_scale_one_decodes_like_generate(tiny) -> None:
    """The guided loop at scale 1 (own positions, cache, padding) gives model.generate's tokens."""
    steer = steerlab.Steer(_vec(tiny), 2.0)
    prompts = ["The movie was wonderful and", "hey"]
    plain = steerlab.generate(tiny, prompts, steering=steer, max_new_tokens=6)
    ids = _guided(tiny, prompts, steer, 1.0)
    assert tiny.tokenizer.batch_decode(ids, skip_special_tokens=True) == plain


def test_first_guided_token_follows_the_formula(tiny_llama) -> None:
    lm = tiny_llama
    steer = steerlab.Steer(_vec(lm, 1), 3.0)
    prompt = "Could you please send"
    enc = lm.tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        ref = lm.model(**enc).logits[:, -1]  # (1, V)
        with steerlab.apply(lm, steerlab.prepare(lm, steer)):
            cond = lm.model(**enc).logits[:, -1]
    for scale in (0.0, 3.0, -1.0):
        want = guided_log_probs(cond, ref, scale).argmax(-1)
        assert _guided(lm, [prompt], steer, scale, n=1)[0, 0] == want[0]
    assert hook_count(lm.model) == 0


def test_guided_batch_equals_rows_alone_and_differs_from_unguided(tiny) -> None:
    steer = steerlab.Steer(_vec(tiny, 2), 2.0)
    prompts = ["The movie was wonderful and", "hey", "A quick brown fox jumps"]
    batched = steerlab.generate(tiny, prompts, steering=steer, max_new_tokens=6, guidance=3.0)
    alone = [steerlab.generate(tiny, [p], steering=steer, max_new_tokens=6, guidance=3.0)[0] for p in prompts]
    assert batched == alone
    assert batched != steerlab.generate(tiny, prompts, steering=steer, max_new_tokens=6)
    assert hook_count(tiny.model) == 0


def test_guided_sampling_is_reproducible(tiny_llama) -> None:
    steer = steerlab.Steer(_vec(tiny_llama, 3), 2.0)
    kw = dict(steering=steer, max_new_tokens=6, guidance=2.0, temperature=0.9, top_p=0.9, top_k=20, seed=7)
    assert steerlab.generate(tiny_llama, ["hey", "The movie"], **kw) == \
        steerlab.generate(tiny_llama, ["hey", "The movie"], **kw)


def test_guidance_bad_input(tiny_llama) -> None:
    steer = steerlab.Steer(_vec(tiny_llama), 2.0)
    with pytest.raises(steerlab.SteerlabError, match="guidance must be a number"):
        steerlab.generate(tiny_llama, ["hey"], steering=steer, guidance="lots")
    with pytest.raises(steerlab.SteerlabError, match="finite"):
        steerlab.generate(tiny_llama, ["hey"], steering=steer, guidance=float("nan"))
    with pytest.raises(steerlab.SteerlabError, match="needs guidance"):
        steerlab.generate(tiny_llama, ["hey"], steering=steer, guidance_reference={})
    with pytest.raises(steerlab.SteerlabError, match="attributes"):  # no SteerLM steer to take it
        steerlab.generate(tiny_llama, ["hey"], steering=steer, guidance=2.0, guidance_reference={"humor": 0})
    assert hook_count(tiny_llama.model) == 0
