"""Where to intervene in each architecture: one table, a guesser, and a user override.

Sites (per decoder layer):
  ``block`` — the decoder block's output, i.e. the residual stream after the layer
              (what llama.cpp control vectors and repeng steer);
  ``mlp``   — the MLP (feed-forward) sub-module's output, before it joins the residual;
  ``attn``  — the attention sub-module's output, before it joins the residual.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from steerlab.errors import LayerError

SITES = ("block", "mlp", "attn")


@dataclass(frozen=True)
class Layout:
    """Dotted module paths for one architecture (relative to the CausalLM module)."""

    base: str  # the module that owns the decoder layers (receives input_ids, past_key_values)
    layers: str  # the nn.ModuleList of decoder layers
    attn: str  # attribute of a layer holding self-attention ("": none, site "attn" is refused)
    mlp: str  # attribute of a layer holding the MLP ("": none, e.g. OPT's fc1/fc2 sit in the layer)
    final_norm: str  # the norm applied before the LM head
    lm_head: str  # the output projection to vocabulary logits
    embed: str  # the token embedding


_LLAMA_LIKE = Layout("model", "model.layers", "self_attn", "mlp", "model.norm", "lm_head",
                     "model.embed_tokens")

ARCHITECTURES: dict[str, Layout] = {
    **{t: _LLAMA_LIKE for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2",
                                "gemma3_text", "gemma3", "phi3", "olmo", "olmo2", "granite",
                                "smollm3", "cohere", "stablelm")},
    "gpt2": Layout("transformer", "transformer.h", "attn", "mlp", "transformer.ln_f", "lm_head",
                   "transformer.wte"),
    "gpt_neox": Layout("gpt_neox", "gpt_neox.layers", "attention", "mlp",
                       "gpt_neox.final_layer_norm", "embed_out", "gpt_neox.embed_in"),
    "gptj": Layout("transformer", "transformer.h", "attn", "mlp", "transformer.ln_f", "lm_head",
                   "transformer.wte"),
    "opt": Layout("model.decoder", "model.decoder.layers", "self_attn", "", "model.decoder.final_layer_norm",
                  "lm_head", "model.decoder.embed_tokens"),
    **{t: Layout("transformer", "transformer.h", "self_attention", "mlp", "transformer.ln_f", "lm_head",
                 "transformer.word_embeddings") for t in ("falcon", "bloom")},
}

ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")
MLP_NAMES = ("mlp", "feed_forward", "ffn")
NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm")
EMBED_NAMES = ("embed_tokens", "wte", "embed_in", "word_embeddings")


def get_module(root: nn.Module, path: str) -> nn.Module:
    """``root.get_submodule`` with a steerlab error."""
    try:
        return root.get_submodule(path)
    except AttributeError:
        raise LayerError(f"module {path!r} not found in {type(root).__name__}") from None


def guess_layout(model: nn.Module) -> Layout:
    """Find the layout of an architecture missing from :data:`ARCHITECTURES`.

    Looks for the ``nn.ModuleList`` with ``num_hidden_layers`` entries (all that ``block`` steering
    needs), then the usual names of the attention / MLP children, the final norm and the
    embedding. A child it cannot find is left empty: asking for that site later is refused with
    a clear error, while the other sites work.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    if model_type in ARCHITECTURES:
        return ARCHITECTURES[model_type]
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    lists = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.ModuleList) and len(m) > 0 and (n is None or len(m) == n)]
    if not lists:
        raise LayerError(f"cannot find the decoder layers of {type(model).__name__}; pass layout=")
    layers_path, layers = lists[0]
    first = layers[0]
    attn = next((a for a in ATTN_NAMES if hasattr(first, a)), "")
    mlp = next((a for a in MLP_NAMES if hasattr(first, a)), "")
    base = layers_path.rsplit(".", 1)[0] if "." in layers_path else ""
    base_mod = get_module(model, base) if base else model
    prefix = f"{base}." if base else ""
    norm = next((f"{prefix}{c}" for c in NORM_NAMES if hasattr(base_mod, c)), "")
    embed = next((f"{prefix}{c}" for c in EMBED_NAMES if hasattr(base_mod, c)), "")
    head = next((h for h in ("lm_head", "embed_out") if hasattr(model, h)), "lm_head")
    return Layout(base, layers_path, attn, mlp, norm, head, embed)
