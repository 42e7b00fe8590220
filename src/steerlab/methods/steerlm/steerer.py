"""SteerLM behind the shared Steerer interface.

Applying a :class:`SteerLMAdapter` does two things:

* ``rewrite_formatted`` opens the model's turn with the attribute string (option ``attributes``;
  unspecified attributes take the schema's defaults) through the adapter's template
  (``rewrite_prompt`` instead, for adapters placed in the user turn);
* ``install`` adds the LoRA update ``strength · scaling · B (A x)`` to each adapted module's output
  with a forward hook. The hook scales per row, so rows of one batch may use the adapter or not,
  ask for different attribute values (only their prompts differ) or add activation vectors.
  PEFT's own injection swaps modules for the whole batch, which is why inference does not use it;
  training does (:mod:`steerlab.methods.steerlm.sft`), and the factors are PEFT's, so the two agree.

Strength 1 is the adapter as trained; 0 leaves the model and the prompt untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from steerlab.core.hooks import HookSet
from steerlab.core.model import LoadedModel
from steerlab.core.positions import PositionTracker
from steerlab.core.steerer import Application, Steerer
from steerlab.errors import ModelMismatchError, SteerlabError, about
from steerlab.methods.peft_lora import install_lora
from steerlab.methods.steerlm.artifact import SteerLMAdapter
from steerlab.models.loading import as_loaded


@dataclass
class SteerLMOptions:
    """Per-application knobs: the requested attribute values (a mapping or ``"humor:3,toxicity:0"``)."""

    attributes: Mapping[str, int] | str | None = None


class SteerLMSteerer(Steerer[SteerLMAdapter, SteerLMOptions]):
    """Attribute-conditioned generation with a SteerLM adapter."""

    name = "steerlm"
    options_cls = SteerLMOptions
    suggested_strengths = (1.0,)

    def fit(self, lm: LoadedModel, data: Any, **config: Any) -> SteerLMAdapter:
        from steerlab.methods.steerlm.sft import train_sft

        return train_sft(as_loaded(lm), data, **config)

    def bind_options(self, artifact: SteerLMAdapter, options: SteerLMOptions) -> SteerLMOptions:
        """The attributes (a mapping or ``"humor:3,toxicity:0"``) resolved once against the
        adapter's schema: every attribute, defaults filled in, validated."""
        with about("attributes"):
            return SteerLMOptions(artifact.schema.resolve(options.attributes))

    def validate(self, lm: LoadedModel, app: Application, *, allow_mismatch: bool = False) -> None:
        super().validate(lm, app, allow_mismatch=allow_mismatch)
        art: SteerLMAdapter = app.artifact  # type: ignore[assignment]
        with about("attributes"):
            art.schema.resolve(app.options.attributes)  # unknown attribute / out of range -> error now
        modules = dict(lm.model.named_modules())
        for name, (a, b) in art.lora.items():
            mod = modules.get(name)
            if mod is None:
                raise ModelMismatchError(f"{art.name!r} adapts {name}, which {lm.name!r} does not have")
            n_in, n_out = _linear_shape(mod)
            if (a.shape[1], b.shape[0]) != (n_in, n_out):
                raise ModelMismatchError(f"{art.name!r}: {name} maps {n_in} -> {n_out} features in {lm.name!r}; "
                                         f"the adapter's factors A {tuple(a.shape)} and B {tuple(b.shape)} "
                                         f"expect A (r, {n_in}) and B ({n_out}, r)")

    def adapter(self, artifact: SteerLMAdapter) -> tuple[Mapping[str, tuple[Tensor, Tensor]], float]:
        return artifact.lora, artifact.scaling

    def rewrite_prompt(self, prompt: str, artifact: Any, strength: float, options: Any) -> str:
        if strength == 0:
            return prompt
        art: SteerLMAdapter = artifact
        return art.prompt(prompt, options.attributes)

    def rewrite_formatted(self, text: str, artifact: Any, strength: float, options: Any) -> str:
        if strength == 0:
            return text
        art: SteerLMAdapter = artifact
        return text + art.response_prefix(options.attributes)

    def install(self, lm: LoadedModel, apps: Sequence[Application], hooks: HookSet,
                tracker: PositionTracker) -> None:
        # Rows asking for different attributes are separate applications of one adapter: sum their
        # (disjoint) strengths so each module computes B(Ax) once per forward.
        per_art: dict[int, tuple[SteerLMAdapter, Tensor]] = {}
        for app in apps:
            art: SteerLMAdapter = app.artifact  # type: ignore[assignment]
            prev = per_art.get(id(art))
            s = app.strengths if prev is None else prev[1] + app.strengths
            per_art[id(art)] = (art, s)
        install_lora(lm, hooks, [(art.lora, art.scaling, strengths) for art, strengths in per_art.values()])


def merged_weights(lm: LoadedModel, art: SteerLMAdapter) -> dict[str, Tensor]:
    """Merged weights ``W + scaling · B A`` per adapted linear module (for tests and export).

    GPT-2's Conv1D stores W as (in, out); the merge is transposed accordingly.
    """
    merged = {}
    for name, (a, b) in art.lora.items():
        module = lm.model.get_submodule(name)
        w = module.weight.detach().float()
        delta = art.scaling * (b @ a)  # (out, in)
        if type(module).__name__ == "Conv1D":  # weight stored (in, out); square ones are ambiguous by shape
            delta = delta.T
        if tuple(w.shape) != tuple(delta.shape):
            raise SteerlabError(f"cannot merge {name}: weight {tuple(w.shape)}, delta {tuple(delta.shape)}")
        merged[name] = w + delta
    return merged


def _linear_shape(module: Any) -> tuple[int, int]:
    """(in, out) features of a linear layer (``nn.Linear``, or GPT-2's ``Conv1D`` with weight (in, out))."""
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return int(module.in_features), int(module.out_features)
    w = getattr(module, "weight", None)
    if w is None or w.dim() != 2:
        raise ModelMismatchError(f"{type(module).__name__} is not a linear layer; a LoRA adapter cannot adapt it")
    if type(module).__name__ == "Conv1D":
        return int(w.shape[0]), int(w.shape[1])
    return int(w.shape[1]), int(w.shape[0])
