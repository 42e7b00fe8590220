"""A model without its weights: the module tree on PyTorch's meta device, the tokenizer, and the
fingerprint read from the checkpoint.

Where another engine runs the model (``steerlab serve --engine vllm``), steerlab's side still
formats prompts (chat template, the methods' prompt rewrites), tokenises, and checks each
artifact against the model (layers, widths, fingerprint, an adapter's target modules). None of
that reads a weight, so the server holds no second copy of them: the module tree is built on the
meta device (``accelerate.init_empty_weights``), and the one tensor the fingerprint needs (the
token embedding) is read alone from the checkpoint's safetensors. Anything that would run the
model refuses by name (:meth:`LoadedModel.require_weights`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import Tensor

from steerlab.core.fingerprint import ModelFingerprint, config_hash, weights_hash
from steerlab.errors import ModelNotFoundError, SteerlabError
from steerlab.models.layout import Layout
from steerlab.models.loading import LoadedModel, resolve_source, wrap_model

EMBEDDING_KEYS = ("model.embed_tokens.weight", "embed_tokens.weight", "transformer.wte.weight",
                  "model.language_model.embed_tokens.weight", "gpt_neox.embed_in.weight")
"""Where checkpoints keep the token embedding (the weights hash is taken over it)."""


def load_weightless(name_or_path: str, *, layout: Layout | None = None) -> LoadedModel:
    """Load ``name_or_path``'s config and tokenizer, and its module tree without weights.

    The fingerprint equals :func:`~steerlab.models.loading.load_model`'s for the same checkpoint,
    so artifacts are checked exactly as on a loaded model. Needs a local folder (or a packaged
    model, or a hub model already in the Hugging Face cache) of safetensors: a GGUF file would have to
    be read in full for its embedding."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    source, gguf_file, info = resolve_source(name_or_path)
    if info.get("hub"):  # the engine beside this one has downloaded it: read the cached snapshot
        source = _cached_snapshot(source)
    if gguf_file is not None or not Path(source).is_dir():
        raise SteerlabError(f"{name_or_path!r}: a model loaded without weights needs a folder of safetensors "
                            "(a packaged model, a local checkpoint or a downloaded hub model), not a GGUF file")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
    except OSError as e:
        raise ModelNotFoundError(f"could not load {name_or_path!r}: {str(e).splitlines()[0]}") from None
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)  # every parameter on the meta device
    lm = wrap_model(model, tokenizer, name=name_or_path, layout=layout)
    lm.source, lm.info = source, {**info, "weights": False}
    lm.__dict__["fingerprint"] = fingerprint_from_checkpoint(name_or_path, config, source)
    lm.load_seconds = time.perf_counter() - start
    return lm


def _cached_snapshot(repo_id: str) -> str:
    """The local folder of a hub model already in the Hugging Face cache (nothing is downloaded)."""
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(repo_id, local_files_only=True))
    except Exception as e:  # noqa: BLE001 - any miss is the same answer to the user
        raise ModelNotFoundError(f"{repo_id!r} is not in the Hugging Face cache yet ({type(e).__name__}); "
                                 "the serving engine downloads it first") from None


def fingerprint_from_checkpoint(name: str, config: Any, model_dir: str | None,
                                fallback: Tensor | None = None) -> ModelFingerprint:
    """The fingerprint steerlab computes when it loads this checkpoint with transformers, with the
    token embedding read alone from the checkpoint's safetensors. ``fallback`` (V, H) stands in
    when the folder holds no such tensor (an engine's own copy: it may be in another dtype, padded
    or sharded); without either, the weights hash is empty and only shape checks can pass
    (artifacts then need ``allow_mismatch``)."""
    embed = checkpoint_tensor(model_dir, EMBEDDING_KEYS) if model_dir else None
    if embed is None:
        embed = fallback
    digest = weights_hash(embed) if embed is not None else ""
    return ModelFingerprint(name=name, model_type=str(config.model_type), hidden_size=int(config.hidden_size),
                            num_layers=int(config.num_hidden_layers), vocab_size=int(config.vocab_size),
                            config_hash=config_hash(config), weights_hash=digest)


def checkpoint_tensor(model_dir: str, keys: tuple[str, ...]) -> Tensor | None:
    """The first of ``keys`` found in a folder's safetensors files (each file's header read once;
    the tensor read alone), or None."""
    from safetensors import safe_open

    folder = Path(model_dir)
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            held = set(f.keys())
            for key in keys:
                if key in held:
                    return f.get_tensor(key)
    return None
