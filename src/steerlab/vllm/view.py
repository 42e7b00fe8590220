"""vLLM's model seen the way steerlab's steerers see a transformers model, so every hook-based
method runs inside vLLM unchanged (no branch on the method).

vLLM flattens a step's batch: every module sees ``(T, H)`` — the tokens of all scheduled requests,
prefill chunks and decode steps alike, one after another. Here each token is a batch *row* of
length one: hooks get ``(T, 1, H)``, a steer's per-row strengths are per-token (each token takes
its own request's strength), and the position tracker gives each row its absolute position and
its request's prompt length. Two more differences are bridged by :class:`VllmHookSet`:

- a vLLM decoder layer returns ``(hidden, residual)`` whose sum is the residual stream (a ``pair``
  layer) or the stream first (a ``first`` layer, :mod:`steerlab.vllm.conventions`); a hook sees the
  stream, and a pair layer returns ``(steered stream, 0)``, which the next layer's fused
  add-and-norm reads exactly as it would the pair;
- the LM head's input is only the rows vLLM samples from (one per request), computed in
  ``compute_logits``; :class:`HeadShim` is the module that call goes through, so a hook on
  ``lm_head`` sees those rows (``(N, 1, H)``) and their logits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.hooks import HookSet
from steerlab.errors import SteerlabError
from steerlab.models.layout import guess_layout
from steerlab.models.loading import LoadedModel
from steerlab.models.weightless import fingerprint_from_checkpoint
from steerlab.vllm.conventions import Convention


class HeadShim(nn.Module):
    """Stands for the LM head: ``forward(h (N, H)) -> logits (N, V)`` through vLLM's own
    ``compute_logits`` (vocabulary-parallel gathering, soft-capping and all)."""

    def __init__(self, compute_logits: Callable[[Tensor], Any]) -> None:
        super().__init__()
        self._compute = compute_logits

    def forward(self, hidden: Tensor) -> Any:
        return self._compute(hidden)


class VllmView(nn.Module):
    """A transformers-shaped view of a vLLM causal LM: ``model`` (the decoder stack, vLLM's own
    module, not copied) and ``lm_head`` (a :class:`HeadShim`). The vLLM model's
    ``compute_logits`` is routed through the shim (see :func:`attach_view`)."""

    def __init__(self, vllm_model: nn.Module, compute_logits: Callable[[Tensor], Any]) -> None:
        super().__init__()
        self.model = vllm_model.model
        self.lm_head = HeadShim(compute_logits)
        self.config: Any = vllm_model.config


def _as_rows(x: Any) -> Any:
    return x.unsqueeze(1) if isinstance(x, Tensor) and x.dim() == 2 else x  # (T, H) -> (T, 1, H)


def _from_rows(x: Any) -> Any:
    return x.squeeze(1) if isinstance(x, Tensor) and x.dim() == 3 else x


class VllmHookSet(HookSet):
    """A :class:`HookSet` whose hooks see vLLM's tensors in steerlab's shapes (module docstring).
    ``conventions`` (layer index -> ``pair`` / ``first``, :mod:`steerlab.vllm.conventions`) says
    what each decoder layer returns; a hook on a layer without one is refused when installed."""

    def __init__(self, layers: nn.ModuleList, conventions: Mapping[int, Convention]) -> None:
        super().__init__()
        self._layers = {id(m): i for i, m in enumerate(layers)}
        self._conventions = dict(conventions)
        self.active = True
        """While False the hooks stay installed but change nothing (a set kept across decode steps
        is switched on only for the calls it was planned for)."""

    def forward_hook(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        if id(module) in self._layers:
            index = self._layers[id(module)]
            convention = self._conventions.get(index)
            if convention is None:
                raise SteerlabError(f"decoder layer {index} of this vLLM model has no known output convention "
                                    f"({type(module).__name__}), so a hook on it cannot be placed")

            def layer_hook(mod: nn.Module, args: Any, output: Any) -> Any:
                if not self.active:
                    return None
                if isinstance(output, Tensor):
                    return _from_rows(fn(mod, args, _as_rows(output)))
                if convention == "first":  # the first item is the stream; the rest pass through
                    return (_from_rows(fn(mod, args, _as_rows(output[0]))), *output[1:])
                hidden, residual = output  # (T, H) each; the stream is their sum
                stream = hidden if residual is None else hidden + residual
                new = _from_rows(fn(mod, args, _as_rows(stream)))
                return new, torch.zeros_like(new)

            super().forward_hook(module, layer_hook)
            return

        def hook(mod: nn.Module, args: Any, output: Any) -> Any:
            if not self.active or output is None:  # None: logits on a tensor-parallel rank that does not sample
                return None
            return _from_rows(fn(mod, tuple(_as_rows(a) for a in args), _as_rows(output)))

        super().forward_hook(module, hook)

    def forward_pre_hook(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        def pre_hook(mod: nn.Module, args: Any, kwargs: Any) -> Any:
            if not self.active:
                return None
            out = fn(mod, tuple(_as_rows(a) for a in args), kwargs)
            if out is None:
                return None
            new_args, new_kwargs = out
            return tuple(_from_rows(a) for a in new_args), new_kwargs

        super().forward_pre_hook(module, pre_hook)


def served_fingerprint(view: VllmView, name: str, model_dir: str | None) -> ModelFingerprint:
    """:func:`fingerprint_from_checkpoint`, the view's embedding (unpadded rows) as the fallback."""
    layout = guess_layout(view)
    weight: Tensor = view.get_submodule(layout.embed).weight  # type: ignore[assignment]
    vocab = int(view.config.vocab_size)
    fallback = weight[:vocab] if weight.shape[0] >= vocab else None
    return fingerprint_from_checkpoint(name, view.config, model_dir, fallback)


def loaded_view(view: VllmView, name: str, model_dir: str | None) -> LoadedModel:
    """A :class:`LoadedModel` over the view (no tokenizer: vLLM tokenises), with the served
    model's fingerprint."""
    lm = LoadedModel(model=view, tokenizer=None, layout=guess_layout(view), name=name, source=model_dir or name)
    lm.__dict__["fingerprint"] = served_fingerprint(view, name, model_dir)
    return lm
