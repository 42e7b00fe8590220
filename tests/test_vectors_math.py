"""Exact math of aggregators, operators, hooks and vector arithmetic."""

from __future__ import annotations

import pytest
import torch

import steerlab
from steerlab.core.hooks import output_hidden
from steerlab.errors import SteerlabError
from steerlab.methods.vectors import AGGREGATORS, OPERATORS, SteeringVector
from tests.helpers import PAIRS


def test_mean_diff_is_difference_of_means() -> None:
    pos = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    neg = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    assert torch.equal(AGGREGATORS.get("mean_diff")(pos, neg, True), torch.tensor([1.0, 2.0]))


def test_pca_diff_recovers_the_varying_direction_oriented_to_positive() -> None:
    g = torch.Generator().manual_seed(0)
    axis = torch.tensor([0.6, 0.8, 0.0])
    scales = torch.rand(50, generator=g) * 4 + 1  # paired differences vary along `axis`
    neg = torch.randn(50, 3, generator=g)
    pos = neg + scales[:, None] * axis
    d = AGGREGATORS.get("pca_diff")(pos, neg, True)
    unit = d / d.norm()
    assert torch.allclose(unit, axis, atol=1e-4)
    # scaled to the mean gap along the direction
    assert torch.allclose(d.norm(), (pos.mean(0) - neg.mean(0)) @ unit, atol=1e-4)


def test_pca_aggregators_need_pairs() -> None:
    with pytest.raises(SteerlabError, match="paired"):
        AGGREGATORS.get("pca_diff")(torch.zeros(3, 2), torch.zeros(2, 2), False)


def test_probe_direction_points_to_positive_class() -> None:
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(40, 4, generator=g) + torch.tensor([3.0, 0, 0, 0])
    neg = torch.randn(40, 4, generator=g)
    d = AGGREGATORS.get("probe")(pos, neg, False)
    assert d[0] > 0 and d[0].abs() > d[1:].abs().max()


@pytest.mark.parametrize("name", ["add", "ablate", "clamp"])
def test_operators_identity_at_zero_and_exact_at_one(name: str) -> None:
    g = torch.Generator().manual_seed(2)
    h = torch.randn(2, 3, 5, generator=g)
    v = torch.randn(5, generator=g)
    op = OPERATORS.get(name)
    assert torch.equal(op(h, v, torch.zeros(1, 1, 1), 1.5), h)
    out = op(h, v, torch.ones(1, 1, 1), 1.5)
    u = v / v.norm()
    if name == "add":
        assert torch.equal(out, h + v)
    elif name == "ablate":
        assert torch.allclose(out @ u, torch.zeros(2, 3), atol=1e-5)
    else:
        assert torch.allclose(out @ u, torch.full((2, 3), 1.5), atol=1e-5)


def _block_output(lm, layer: int, text: str, steer=None) -> torch.Tensor:
    """Block output as the next layer sees it (recorder registered after any steering hook)."""
    seen = {}
    enc = lm.tokenizer([text], return_tensors="pt")
    handle = steerlab.patch(lm, steer if steer is not None else ())
    rec = lm.layers[layer].register_forward_hook(lambda m, a, o: seen.__setitem__("h", output_hidden(o)))
    try:
        with torch.no_grad():
            lm.model(**enc)
    finally:
        rec.remove()
        handle.remove()
    return seen["h"]


def test_add_hook_is_exact(tiny) -> None:
    v = torch.randn(tiny.hidden_size, generator=torch.Generator().manual_seed(3))
    vec = SteeringVector({2: v}, model=tiny.fingerprint)
    orig = _block_output(tiny, 2, "The movie was good")
    patched = _block_output(tiny, 2, "The movie was good", steerlab.Steer(vec, 2.5))
    assert torch.equal(patched, orig + 2.5 * v)


def test_composition_by_arithmetic_equals_stacked_contexts(tiny_llama) -> None:
    lm = tiny_llama
    g = torch.Generator().manual_seed(4)
    a = SteeringVector({1: torch.randn(lm.hidden_size, generator=g)}, model=lm.fingerprint)
    b = SteeringVector({1: torch.randn(lm.hidden_size, generator=g)}, model=lm.fingerprint)
    summed = _block_output(lm, 1, "hey send me", steerlab.Steer(a + 2 * b))
    composed = _block_output(lm, 1, "hey send me", (steerlab.Steer(a), steerlab.Steer(b, 2.0)))
    assert torch.allclose(summed, composed, atol=1e-6)


def test_vector_value_semantics(tiny_llama) -> None:
    vec = steerlab.extract(tiny_llama, PAIRS, layers=[0, 1])
    assert (vec - vec).is_zero()
    assert (2 * vec) == (vec + vec)
    assert (vec / 2) * 2 == vec
    assert -(-vec) == vec
    unit = vec.normalize()
    assert all(abs(n - 1.0) < 1e-5 for n in unit.norms().values())
    assert vec.select([1]).layers == [1]
    other = SteeringVector({0: torch.ones(tiny_llama.hidden_size)}, site="mlp")
    with pytest.raises(SteerlabError, match="sites"):
        vec + other


def test_extract_all_sites_and_reads(tiny_llama) -> None:
    for site in ("block", "mlp", "attn"):
        for read in ("last", "mean", "all"):
            vec = steerlab.extract(tiny_llama, PAIRS, layers=[1], site=site, read=read)
            assert vec.site == site and vec.directions[1].shape == (tiny_llama.hidden_size,)
            assert torch.isfinite(vec.directions[1]).all()


def test_mean_read_skips_the_attention_sink_token(tiny_llama) -> None:
    """The mean read of a text is the mean of its per-token states after the first, for either
    padding side and whatever else shares the batch."""
    from steerlab.models.recording import record

    texts = ["hey send me the file", "ok", "a much longer text than the others in this batch"]
    every = record(tiny_llama, texts, [1], positions="all")[1]  # (total tokens, H)
    lens = [len(ids) for ids in tiny_llama.tokenizer(texts)["input_ids"]]
    starts = [sum(lens[:i]) for i in range(len(texts))]
    want = torch.stack([every[s + (1 if n > 1 else 0):s + n].mean(0) for s, n in zip(starts, lens)])  # (3, H)
    original = tiny_llama.tokenizer.padding_side
    try:
        for side in ("left", "right"):
            tiny_llama.tokenizer.padding_side = side
            got = record(tiny_llama, texts, [1], positions="mean")[1]  # (3, H)
            assert torch.allclose(got, want, atol=1e-5), side
    finally:
        tiny_llama.tokenizer.padding_side = original


def test_vectors_at_different_sites_of_one_layer_compose(tiny_llama) -> None:
    lm = tiny_llama
    g = torch.Generator().manual_seed(5)
    blk = SteeringVector({1: torch.randn(lm.hidden_size, generator=g)}, site="block", model=lm.fingerprint)
    mlp = SteeringVector({1: torch.randn(lm.hidden_size, generator=g)}, site="mlp", model=lm.fingerprint)
    only_blk = _block_output(lm, 1, "hey send me", steerlab.Steer(blk))
    both = _block_output(lm, 1, "hey send me", (steerlab.Steer(blk), steerlab.Steer(mlp)))
    assert not torch.equal(only_blk, both)


def test_negative_layer_indices_in_options(tiny_llama) -> None:
    lm = tiny_llama
    v = torch.randn(lm.hidden_size, generator=torch.Generator().manual_seed(6))
    vec = SteeringVector({lm.num_layers - 1: v}, model=lm.fingerprint)
    a = _block_output(lm, lm.num_layers - 1, "hey", steerlab.Steer(vec, 1.0, {"layers": [-1]}))
    b = _block_output(lm, lm.num_layers - 1, "hey", steerlab.Steer(vec, 1.0))
    assert torch.equal(a, b)
