"""LM-Steer: exact transform, per-row values, training determinism and resumable checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import steerlab
from steerlab.methods.lm_steer import LMSteer, train
from steerlab.models.layout import get_module
from tests.helpers import PAIRS


def _art(lm, adaptor="multiply", seed=0) -> LMSteer:
    return train(lm, PAIRS, adaptor_class=adaptor, rank=3, n_steps=2, batch_size=4, epsilon=0.5,
                 init_var=0.2, seed=seed, progress=False)


def _hidden_and_logits(lm, text: str, steer=None):
    enc = lm.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        h = lm.base(**enc).last_hidden_state
        handle = steerlab.patch(lm, steer if steer is not None else ())
        try:
            logits = lm.model(**enc).logits
        finally:
            handle.remove()
    return h, logits


def test_multiply_transform_is_exact(tiny_llama) -> None:
    lm = tiny_llama
    art = _art(lm)
    h, steered = _hidden_and_logits(lm, "The movie was", steerlab.Steer(art, 3.0))
    p1, p2 = art.params["projector1"][0], art.params["projector2"][0]  # steer 0 (the trained one)
    expected_h = h + art.epsilon * 3.0 * (h @ p1) @ p2.T
    head = get_module(lm.model, lm.layout.lm_head)
    assert torch.allclose(steered, head(expected_h), atol=1e-5)


@pytest.mark.parametrize("adaptor", ["add", "offset"])
def test_other_adaptors(tiny_llama, adaptor: str) -> None:
    lm = tiny_llama
    art = _art(lm, adaptor)
    h, steered = _hidden_and_logits(lm, "The movie was", steerlab.Steer(art, 2.0))
    head = get_module(lm.model, lm.layout.lm_head)
    if adaptor == "add":
        expected = head(h + art.epsilon * 2.0 * art.params["add_vec"][0])
    else:
        expected = head(h) + art.epsilon * 2.0 * art.params["offset_vec"][0]
    assert torch.allclose(steered, expected, atol=1e-5)


def test_explicit_values_and_dummy(tiny_llama) -> None:
    lm = tiny_llama
    art = _art(lm)
    _, a = _hidden_and_logits(lm, "hey", steerlab.Steer(art, 2.0, {"values": [1.0, 0.5]}))
    _, b = _hidden_and_logits(lm, "hey", steerlab.Steer(art, 1.0, {"values": [2.0, 1.0]}))
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(steerlab.SteerlabError, match="values has 3"):
        steerlab.patch(lm, steerlab.Steer(art, 1.0, {"values": [1.0, 2.0, 3.0]}))
    with pytest.raises(steerlab.SteerlabError, match="no steer"):
        steerlab.patch(lm, steerlab.Steer(art, 1.0, {"steer": "humour"}))


def test_per_row_values_equal_rows_alone(tiny) -> None:
    art = _art(tiny)
    prompts = ["The movie was wonderful", "hey", "Could you please send"]
    rows = [steerlab.Steer(art, 5.0), steerlab.Steer(art, -5.0), None]
    batched = steerlab.generate(tiny, prompts, steering=rows, max_new_tokens=6)
    alone = [steerlab.generate(tiny, [p], steering=[r], max_new_tokens=6)[0] for p, r in zip(prompts, rows)]
    assert batched == alone


def test_training_is_deterministic_and_resumes_exactly(tiny_llama, tmp_path: Path) -> None:
    kw = {"rank": 3, "batch_size": 3, "epsilon": 0.5, "init_var": 0.2, "seed": 3, "progress": False}
    full = train(tiny_llama, PAIRS, n_steps=4, **kw)
    again = train(tiny_llama, PAIRS, n_steps=4, **kw)
    assert all(torch.equal(full.params[k], again.params[k]) for k in full.params)
    train(tiny_llama, PAIRS, n_steps=2, checkpoint_dir=tmp_path / "ck", checkpoint_every=1, **kw)
    resumed = train(tiny_llama, PAIRS, n_steps=4, checkpoint_dir=tmp_path / "ck", **kw)
    assert resumed.meta["training"]["resumed_from_step"] == 2
    assert all(torch.allclose(full.params[k], resumed.params[k], atol=1e-6) for k in full.params)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["checkpoint.safetensors", "state.json"]


def test_the_artifact_records_the_projectors_rank(tiny_llama, tmp_path: Path) -> None:
    """The config's rank is the projectors' (it once read the training process's index, 0), survives
    a save and load, and a config that contradicts the tensors is refused."""
    art = _art(tiny_llama)
    assert art.rank == 3 and art.meta["training"]["rank"] == 3
    art.save(tmp_path / "a")
    assert steerlab.load_artifact(tmp_path / "a").rank == 3
    assert LMSteer(dict(art.params), "multiply", 0.5, art.steer_names, rank=0).rank == 3  # not recorded: read
    with pytest.raises(steerlab.SteerlabError, match="rank 5 in the config but the projectors have rank 3"):
        LMSteer(dict(art.params), "multiply", 0.5, art.steer_names, rank=5)


def test_cached_states_train_like_fresh_forwards(tiny_llama) -> None:
    """Keeping each text's frozen final states after its first visit changes nothing but the
    cost: over several epochs of a subset the losses and parameters match a run that recomputes
    every batch, and the cache holds one entry per example used."""
    from steerlab.methods.lm_steer.states import StateCache

    kw = {"rank": 3, "batch_size": 4, "epsilon": 0.5, "init_var": 0.2, "seed": 1, "progress": False,
          "max_examples": 6, "n_steps": 6}
    fresh = train(tiny_llama, PAIRS, **kw)
    cached = train(tiny_llama, PAIRS, cache_states=True, **kw)
    assert fresh.meta["training"]["examples_used"] == 6 and fresh.meta["training"]["epochs"] == 4.0
    assert torch.allclose(torch.tensor(fresh.meta["training"]["loss_history"]),
                          torch.tensor(cached.meta["training"]["loss_history"]), atol=1e-3)
    assert all(torch.allclose(fresh.params[k], cached.params[k], atol=1e-5) for k in fresh.params)
    texts = ["a short one", "a somewhat longer text than the first"]
    cache = StateCache(tiny_llama, texts, 32, cache=True)
    h_a, labels_a = cache.batch([1, 0])
    h_b, labels_b = StateCache(tiny_llama, texts, 32, cache=False).batch([1, 0])
    assert len(cache) == 2 and torch.equal(labels_a, labels_b)
    mask = labels_a != -100
    assert torch.allclose(h_a[:, 1:][mask], h_b[:, 1:][mask], atol=1e-5)


def test_bad_training_config(tiny_llama) -> None:
    with pytest.raises(steerlab.SteerlabError, match="max_examples"):
        train(tiny_llama, PAIRS, max_examples=-1, n_steps=1)
    with pytest.raises(steerlab.SteerlabError, match="dummy_steer"):
        train(tiny_llama, PAIRS, num_steers=2, dummy_steer=0, training_steer=0, n_steps=1)
    with pytest.raises(steerlab.SteerlabError, match="adaptor_class"):
        train(tiny_llama, PAIRS, adaptor_class="divide", n_steps=1)


def test_transfer_to_itself_is_identity_and_to_another_model_binds_it(tiny_tokenizer, tiny_llama) -> None:
    from steerlab.methods.lm_steer.transfer import transfer
    from tests.helpers import make_tiny

    art = _art(tiny_llama)
    same = transfer(art, tiny_llama, tiny_llama)
    for k in art.params:
        assert torch.allclose(same.params[k], art.params[k], atol=1e-3)
    other = make_tiny("qwen2", tiny_tokenizer)
    moved = transfer(art, tiny_llama, other)
    assert moved.model == other.fingerprint
    assert moved.params["projector1"].shape == art.params["projector1"].shape
    assert moved.meta["provenance"]["transfer"]["shared_tokens"] == len(tiny_tokenizer)
    steerlab.patch(other, steerlab.Steer(moved, 2.0)).remove()
    with pytest.raises(steerlab.SteerlabError):
        steerlab.patch(other, steerlab.Steer(art, 2.0))  # untransferred: wrong model


def test_transfer_calibration_undoes_a_reversed_map(tiny_llama) -> None:
    from steerlab.methods.lm_steer import LMSteer
    from steerlab.methods.lm_steer.transfer import _calibrate, shared_vocabulary

    art = _art(tiny_llama)
    reversed_ = LMSteer({**art.params, "projector2": -2.0 * art.params["projector2"]}, art.adaptor_class, art.epsilon,
                        art.steer_names, art.dummy_steer, art.rank, art.model, {})
    src, tgt = shared_vocabulary(tiny_llama, tiny_llama)
    fit: dict = {}
    fixed = _calibrate(reversed_, art, tiny_llama, tiny_llama, src, tgt, fit, ["The movie was", "hey there"])
    assert all(s["flipped"] and abs(s["scale"] - 0.5) < 1e-3 for s in fit["calibration"]["steers"])
    assert torch.allclose(fixed.params["projector2"], art.params["projector2"], atol=1e-5)


def test_max_subspans_hand_case() -> None:
    from steerlab.methods.lm_steer.interpret import max_subspans

    scores = [0.0, 2.0, 1.0, -5.0, 3.0, -0.5, 0.2, -1.0]
    assert max_subspans(scores, max_segments=2, max_length=3) == [(1, 3), (4, 5)]
    assert max_subspans([-1.0, -2.0], 3, 2) == []


def test_interpretation_outputs(tiny_llama) -> None:
    from steerlab.methods.lm_steer.interpret import dimensions, evidence, token_shifts

    art = _art(tiny_llama)
    shifts = token_shifts(tiny_llama, art, ["The movie was", "hey send"], value=5.0, k=5)
    assert len(shifts["up"]) == 5 and shifts["up"][0][1] > 0 > shifts["down"][0][1]
    flipped = token_shifts(tiny_llama, art, ["The movie was", "hey send"], value=-5.0, k=5)
    assert flipped["down"][0][0] == shifts["up"][0][0] or flipped["up"][0][0] == shifts["down"][0][0]
    dims = dimensions(tiny_llama, art, n_dims=2, k=3)
    assert len(dims) == 2 and dims[0]["singular_value"] >= dims[1]["singular_value"]
    ev = evidence(tiny_llama, art, "The movie was wonderful and I loved it.")
    assert len(ev.tokens) == len(ev.scores) and ev.scores[0] == 0.0
    assert "<span" in ev.html() and "".join(ev.tokens) in ev.rich().plain
