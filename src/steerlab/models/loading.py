"""Load a causal LM (packaged offline name, local directory, GGUF file or hub id) as one object.

:class:`LoadedModel` bundles the transformers model, its tokenizer and its :class:`Layout`, and
exposes what steering needs: layer count, hidden size, site modules and a fingerprint.
"""

from __future__ import annotations

import difflib
import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from steerlab.core.fingerprint import ModelFingerprint, config_hash, weights_hash
from steerlab.errors import LayerError, ModelMismatchError, ModelNotFoundError, SteerlabError
from steerlab.models.layout import SITES, Layout, get_module, guess_layout
from steerlab.models.packaged import DEFAULT_MODEL, PACKAGED, converted_dir


@dataclass
class LoadedModel:
    """A model, its tokenizer and where to intervene in it."""

    model: Any  # transformers.PreTrainedModel (typed loosely: transformers is untyped)
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    layout: Layout
    name: str
    source: str = ""
    load_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    lock: Any = field(default_factory=threading.RLock, repr=False, compare=False)
    """Held by every call that runs or changes the shared model and tokenizer (generation,
    recording, training, perplexity), so threads sharing one model take turns instead of mixing
    padding sides, adapters or batch-shaped steering."""

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(getattr(self.config, "hidden_size", None) or self.config.n_embd)

    @property
    def model_type(self) -> str:
        return str(self.config.model_type)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def has_weights(self) -> bool:
        """False for a model loaded without its weights (:func:`~steerlab.models.weightless.load_weightless`:
        another engine runs it), which can format, tokenise and check artifacts but not run."""
        return bool(self.info.get("weights", True))

    def require_weights(self, what: str) -> None:
        """Refuse ``what`` (e.g. "explaining text") on a model loaded without its weights."""
        if not self.has_weights:
            raise SteerlabError(f"{what} needs the model's weights in this process; {self.name} is served by "
                                "another engine (steerlab serve --engine vllm) and only its config and tokenizer "
                                "are loaded here: use steerlab's own engine (--engine hf) for it")

    @cached_property
    def base(self) -> nn.Module:
        """The module that owns the decoder layers (receives the KV cache)."""
        return get_module(self.model, self.layout.base) if self.layout.base else self.model

    @cached_property
    def layers(self) -> nn.ModuleList:
        mods = get_module(self.model, self.layout.layers)
        assert isinstance(mods, nn.ModuleList)
        return mods

    @cached_property
    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint(
            name=self.name,
            model_type=self.model_type,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            vocab_size=int(self.config.vocab_size),
            config_hash=config_hash(self.config),
            weights_hash=weights_hash(get_module(self.model, self.layout.embed)),
        )

    def head_weight(self) -> torch.Tensor:
        """The output word embeddings (the LM head's weight) as float32, detached: (V, H)."""
        weight: torch.Tensor = get_module(self.model, self.layout.lm_head).weight  # type: ignore[assignment]
        return weight.detach().float()

    def check_layers(self, layers: Any) -> list[int]:
        """Validate layer indices (negative ones count from the end); returns them normalised."""
        out = []
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, int):
                raise LayerError(f"layer indices must be integers, got {layer!r}")
            idx = layer + self.num_layers if layer < 0 else layer
            if not 0 <= idx < self.num_layers:
                raise LayerError(
                    f"layer {layer} is out of range: {self.name} has layers 0..{self.num_layers - 1}"
                )
            out.append(idx)
        return out

    def site_module(self, layer: int, site: str) -> nn.Module:
        """The module whose output is ``site`` at decoder ``layer``."""
        (idx,) = self.check_layers([layer])
        block = self.layers[idx]
        if site == "block":
            return block
        if site in ("mlp", "attn"):
            path = self.layout.mlp if site == "mlp" else self.layout.attn
            if not path:
                raise LayerError(f"{self.name} ({self.model_type}) has no separate {site} module in its decoder "
                                 "layers; steer site 'block', or pass layout= naming it")
            return get_module(block, path)
        raise LayerError(f"unknown site {site!r}; known sites: {', '.join(SITES)}")


def wrap_model(model: Any, tokenizer: Any, name: str | None = None,
               layout: Layout | None = None) -> LoadedModel:
    """Wrap an already-loaded transformers model and tokenizer (e.g. a tiny test model).

    Refuses a tokenizer that can produce ids the model has no embedding for (a larger
    vocabulary), which would otherwise fail deep inside the first forward pass."""
    _check_vocab(model, tokenizer)
    _prepare_tokenizer(tokenizer)
    model.eval()
    return LoadedModel(model, tokenizer, layout or guess_layout(model),
                       name or str(getattr(model.config, "name_or_path", "") or model.config.model_type))


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | None = None,
    layout: Layout | None = None,
) -> LoadedModel:
    """Load a model by packaged name (see ``steerlab models``), local dir, ``.gguf`` file or hub id.

    ``device`` defaults to the ``STEERLAB_DEVICE`` environment variable, else ``cpu``, so every CLI
    verb runs on a GPU with ``STEERLAB_DEVICE=cuda`` and no per-verb flag.

    Packaged GGUF models are converted once into a safetensors cache, so only the first load pays
    for de-quantisation.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    source, gguf_file, info = resolve_source(name_or_path)
    try:
        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except OSError as e:
        raise ModelNotFoundError(f"could not load {name_or_path!r}: {str(e).splitlines()[0]}") from None
    target = device or os.environ.get("STEERLAB_DEVICE", "cpu")
    if target == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per process under torchrun / accelerate launch
        target = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    model.to(target)  # type: ignore[arg-type]
    lm = wrap_model(model, tokenizer, name=name_or_path, layout=layout)
    lm.source, lm.info = source, info
    lm.load_seconds = time.perf_counter() - start
    return lm


def resolve_source(name_or_path: str) -> tuple[str, str | None, dict[str, Any]]:
    """Where a model name points: (folder or hub id for ``from_pretrained``, GGUF file name in it or
    None, facts for :attr:`LoadedModel.info`). Unknown names are refused with the packaged ones listed."""
    path = Path(name_or_path).expanduser()
    if name_or_path in PACKAGED:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        first = not _is_converted(name_or_path)
        return str(converted_dir(PACKAGED[name_or_path])), None, {"packaged": True, "first_load": first}
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name, {"gguf": True}
    if path.is_dir():
        return str(path), None, {}
    if _looks_like_hub_id(name_or_path):
        return name_or_path, None, {"hub": True}
    close = difflib.get_close_matches(name_or_path, list(PACKAGED), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ModelNotFoundError(
        f"unknown model {name_or_path!r}: not a packaged model, directory, .gguf file or hub id."
        f"{hint} Packaged: {', '.join(PACKAGED)}."
    )


def _is_converted(name: str) -> bool:
    from steerlab.models.packaged import cache_root

    return (cache_root() / "models" / name / "config.json").is_file()


def _looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/", "~"))


def _check_vocab(model: Any, tokenizer: Any) -> None:
    """The tokenizer's ids must index the model's input embeddings."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is None:
        return
    size = len(tokenizer)
    if size > int(rows):
        raise ModelMismatchError(f"the tokenizer has {size} tokens but the model embeds only {rows}: ids "
                                 f"{rows}..{size - 1} would fail inside the model; use the model's own tokenizer "
                                 "(or resize its embeddings)")


def _prepare_tokenizer(tokenizer: Any) -> None:
    """Left padding (so generation appends after real tokens) and a pad token."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


F = TypeVar("F", bound=Callable[..., Any])


def holds_model_lock(fn: F) -> F:
    """Decorate a function whose first argument is a :class:`LoadedModel` so it runs holding the
    model's lock (see :attr:`LoadedModel.lock`)."""

    @functools.wraps(fn)
    def run(lm: LoadedModel, *args: Any, **kwargs: Any) -> Any:
        with lm.lock:
            return fn(lm, *args, **kwargs)

    return run  # type: ignore[return-value]


def as_loaded(lm: Any) -> LoadedModel:
    """``lm`` as a :class:`LoadedModel` (what training and recording need: the whole model, not
    just the protocol the steering core reads); anything else is refused by name."""
    if not isinstance(lm, LoadedModel):
        raise SteerlabError(f"expected a model from steerlab.load_model or wrap_model, got {type(lm).__name__}")
    return lm
