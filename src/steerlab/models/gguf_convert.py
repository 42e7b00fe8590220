"""Convert a GGUF checkpoint to a plain transformers safetensors directory.

transformers de-quantises GGUF on every load (20-70 s on 2 cores) and refuses ``save_pretrained``
on a GGUF-loaded model, so we rebuild a plain model from its config (without the quantisation
entry), copy the de-quantised weights in, and save that once.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Write config, safetensors weights and tokenizer of ``gguf_path`` into ``out_dir``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = gguf_path.stem
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if tied:
        plain.tie_weights()
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del loaded, plain
