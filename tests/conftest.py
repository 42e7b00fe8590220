"""Shared fixtures: tiny random models of four architectures (built here, no hub) and the real
packaged model for behaviour tests (marked slow)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("STEERLAB_QUIET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import steerlab  # noqa: E402
from steerlab.artifacts import shipped_path  # noqa: E402
from steerlab.models.loading import LoadedModel  # noqa: E402

# The shipped SteerLM adapter and its value model (``steerlab artifacts``), used as real files.
ADAPTER = Path(shipped_path("steerlm-smollm2") or "missing:steerlm-smollm2")
VALUE_MODEL = Path(shipped_path("steerlm-smollm2-value-model")
                   or "missing:steerlm-smollm2-value-model")

torch.set_num_threads(1)

CORPUS = [
    "The movie was wonderful and I loved it.", "The movie was terrible and I hated it.",
    "Could you please send me the report?", "hey send me the report asap",
    "The weather this morning was cold and grey.", "I walked into the room and sat down.",
    "Numbers like 1 2 3 4 5 6 7 8 9 0 appear here.", "A quick brown fox jumps over the lazy dog.",
] * 4

ARCHS = ("llama", "gpt2", "qwen2", "gemma3")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<eos>")


def make_tiny(arch: str, tokenizer) -> LoadedModel:
    """A 4-layer random model of ``arch`` with peaked logits (so greedy decoding is stable)."""
    import transformers as tf

    v = len(tokenizer)
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
           "bos_token_id": tokenizer.eos_token_id}
    common = {"vocab_size": v, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
              "initializer_range": 0.3, **ids}
    torch.manual_seed(0)
    if arch == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**common))
    elif arch == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**common))
    elif arch == "gemma3":
        model = tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**common, head_dim=8, sliding_window=16))
    elif arch == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=v, n_embd=32, n_layer=4, n_head=4,
                                                 n_positions=128, initializer_range=0.3, **ids))
    else:
        raise ValueError(arch)
    model.eval()
    return steerlab.wrap_model(model, tokenizer, name=f"tiny-{arch}")


@pytest.fixture(scope="session", params=ARCHS)
def tiny(request, tiny_tokenizer) -> LoadedModel:
    return make_tiny(request.param, tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_llama(tiny_tokenizer) -> LoadedModel:
    return make_tiny("llama", tiny_tokenizer)


@pytest.fixture(scope="session")
def real_lm() -> LoadedModel:
    """The default packaged model (SmolLM2-135M-Instruct); converted once, then cached."""
    return steerlab.load_model("smollm2-135m")


PAIRS = [("The movie was wonderful and I loved it.", "The movie was terrible and I hated it."),
         ("Could you please send me the report?", "hey send me the report asap"),
         ("A quick brown fox jumps over the lazy dog.", "The weather this morning was cold and grey."),
         ("I walked into the room and sat down.", "Numbers like 1 2 3 appear here.")]


def hook_count(model: torch.nn.Module) -> int:
    """Every forward hook and pre-hook on every module."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def logits(lm: LoadedModel, texts=("The movie was", "hey send me the report asap")) -> torch.Tensor:
    enc = lm.tokenizer(list(texts), return_tensors="pt", padding=True)
    with torch.no_grad():
        return lm.model(**enc).logits
