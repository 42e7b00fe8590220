"""Bring-your-own models: architectures outside the common llama shape steer at the sites they
have, refuse the sites they lack by name, and a tokenizer that does not fit the model is refused
before the first forward pass."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import steerlab
from steerlab.errors import LayerError, ModelMismatchError
from steerlab.models.layout import ARCHITECTURES, guess_layout
from tests.helpers import PAIRS, logits

PROMPTS = ["The movie was wonderful and", "hey", "Could you please send", "A quick brown fox jumps"]


def _tiny(arch: str, tokenizer: Any) -> steerlab.LoadedModel:
    import transformers as tf

    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
           "bos_token_id": tokenizer.eos_token_id}
    v = len(tokenizer)
    torch.manual_seed(0)
    if arch == "opt":
        model = tf.OPTForCausalLM(tf.OPTConfig(vocab_size=v, hidden_size=32, num_hidden_layers=4,
                                               num_attention_heads=4, ffn_dim=64, word_embed_proj_dim=32,
                                               max_position_embeddings=128, init_std=0.3, **ids))
    elif arch == "falcon":
        model = tf.FalconForCausalLM(tf.FalconConfig(vocab_size=v, hidden_size=32, num_hidden_layers=4,
                                                     num_attention_heads=4, initializer_range=0.3, **ids))
    else:
        model = tf.BloomForCausalLM(tf.BloomConfig(vocab_size=v, hidden_size=32, n_layer=4, n_head=4,
                                                   initializer_range=0.3, **ids))
    return steerlab.wrap_model(model, tokenizer, name=f"tiny-{arch}")


@pytest.mark.parametrize("arch", ["opt", "falcon", "bloom"])
def test_opt_falcon_bloom_steer_restore_and_batch_per_row(arch: str, tiny_tokenizer: Any) -> None:
    lm = _tiny(arch, tiny_tokenizer)
    assert lm.model_type in ARCHITECTURES
    vec = steerlab.extract(lm, PAIRS, layers=[1, 2])
    base = logits(lm)
    with steerlab.apply(lm, steerlab.Steer(vec, 8.0)):
        steered = logits(lm)
    assert not torch.allclose(steered, base, atol=1e-4)
    assert torch.equal(logits(lm), base)  # restored exactly
    rows = [steerlab.Steer(vec, 6.0), None, steerlab.Steer(vec, -6.0, {"positions": "generated"}),
            steerlab.Steer(vec, 3.0, {"layers": [2]})]
    batched = steerlab.generate(lm, PROMPTS, steering=rows, max_new_tokens=6, progress=False)
    alone = [steerlab.generate(lm, [p], steering=r, max_new_tokens=6, progress=False)[0] for p, r in zip(PROMPTS, rows)]
    assert batched == alone
    assert batched[0] != steerlab.generate(lm, PROMPTS[:1], max_new_tokens=6, progress=False)[0]


def test_a_site_the_layout_lacks_is_refused_by_name(tiny_tokenizer: Any) -> None:
    lm = _tiny("opt", tiny_tokenizer)  # OPT's feed-forward (fc1/fc2) sits in the layer itself
    with pytest.raises(LayerError, match="no separate mlp module"):
        steerlab.extract(lm, PAIRS, layers=[1], site="mlp")
    assert steerlab.extract(lm, PAIRS, layers=[1], site="attn").layers == [1]


def test_the_guess_keeps_what_it_found(tiny_tokenizer: Any) -> None:
    """An unknown architecture whose layers have neither attention nor MLP children by the usual
    names still gets a layout (block steering needs only the layer list)."""
    lm = _tiny("opt", tiny_tokenizer)
    model = lm.model
    model.config.model_type = "not-in-the-table"
    try:
        layout = guess_layout(model)
    finally:
        model.config.model_type = "opt"
    assert layout.layers == "model.decoder.layers" and layout.attn == "self_attn" and layout.mlp == ""
    assert layout.embed == "model.decoder.embed_tokens" and layout.final_norm == "model.decoder.final_layer_norm"


def test_a_tokenizer_larger_than_the_embeddings_is_refused(tiny_tokenizer: Any) -> None:
    import transformers as tf

    small = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=len(tiny_tokenizer) - 20, hidden_size=32,
                                               intermediate_size=64, num_hidden_layers=2, num_attention_heads=4))
    with pytest.raises(ModelMismatchError, match="embeds only"):
        steerlab.wrap_model(small, tiny_tokenizer)


def test_extract_takes_jsonl_shaped_rows(tiny_llama: Any) -> None:
    rows = [{"positive": a, "negative": b} for a, b in PAIRS]
    from_rows = steerlab.extract(tiny_llama, rows, layers=[1, 2])
    from_pairs = steerlab.extract(tiny_llama, PAIRS, layers=[1, 2])
    assert all(torch.equal(from_rows.directions[la], from_pairs.directions[la]) for la in (1, 2))
    labelled = [{"text": a, "label": "positive"} for a, _ in PAIRS] + [{"text": b, "label": 0} for _, b in PAIRS]
    assert steerlab.extract(tiny_llama, labelled, layers=[1]).layers == [1]
    with pytest.raises(steerlab.SteerlabError, match="row 1"):
        steerlab.extract(tiny_llama, [{"positive": "a", "negative": "b"}, {"positive": "a"}], layers=[1])
