"""The SteerLM artifact: an attribute-conditioned LoRA adapter plus the schema and prompt template.

Tensors: ``{module}.lora_A`` (r, in) and ``{module}.lora_B`` (out, r) for each adapted module
(names relative to the transformers model, e.g. ``model.layers.3.self_attn.q_proj``), exactly
PEFT's LoRA factors, so the adapted output is ``W x + scaling · B (A x)`` with
``scaling = lora_alpha / r``. The schema and the template are part of the config: the adapter
can only be queried with the attribute list and prompt layout it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from steerlab.core.artifact import Artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.validate import finite
from steerlab.errors import ArtifactError, SteerlabError
from steerlab.methods.steerlm.schema import AttributeSchema

DEFAULT_TEMPLATE = "<attributes>{attributes}</attributes>\n"
"""The attribute string, rendered where ``placement`` says."""

PLACEMENTS = ("assistant", "user")
"""``assistant`` (default): the template opens the model's own turn, right before the response —
where the SteerLM paper's data format puts the label (``<extra_id_2>quality:4,...`` after the assistant
marker), so the string sits next to the tokens it conditions. ``user``: the template is appended
to the user's text inside the user turn (it conditions more weakly: the string sits further from
the response)."""

USER_TEMPLATE = "{prompt}\n<attributes>{attributes}</attributes>"
"""The template of ``user``-placed adapters (steerlab ≤ 0.4)."""


def render(template: str, prompt: str, attributes: str) -> str:
    """Fill ``template`` (which must hold ``{prompt}`` and ``{attributes}``) without str.format's
    brace parsing, so prompts containing ``{`` or ``}`` are safe."""
    return template.replace("{attributes}", attributes).replace("{prompt}", prompt)


def check_template(template: str, placement: str = "user") -> None:
    if placement not in PLACEMENTS:
        raise SteerlabError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if "{attributes}" not in template:
        raise SteerlabError(f"template must contain {{attributes}}, got {template!r}")
    if placement == "user" and "{prompt}" not in template:
        raise SteerlabError(f"a user-placed template must contain {{prompt}}, got {template!r}")
    if placement == "assistant" and "{prompt}" in template:
        raise SteerlabError(f"an assistant-placed template opens the model's turn and cannot hold {{prompt}}, "
                            f"got {template!r}")


def user_text(template: str, placement: str, prompt: str, attributes: str) -> str:
    """The user's turn: ``prompt``, with the attribute string appended for ``user`` placement."""
    return render(template, prompt, attributes) if placement == "user" else prompt


def turn_prefix(template: str, placement: str, attributes: str) -> str:
    """What opens the model's turn: the attribute string for ``assistant`` placement, else nothing."""
    return render(template, "", attributes) if placement == "assistant" else ""


def conditioned_prompt(format_prompt: Any, prompt: str, attributes: str, template: str, placement: str) -> str:
    """The exact text the model continues: :func:`user_text` run through ``format_prompt`` (the
    chat template, or identity), then :func:`turn_prefix`.

    Training (:func:`~steerlab.methods.steerlm.sft.encode_example`) uses this; inference applies
    the same two pieces in the steerer's two rewrite stages, so they cannot drift apart.
    """
    return format_prompt(user_text(template, placement, prompt, attributes)) + turn_prefix(
        template, placement, attributes)


@dataclass(eq=False, repr=False)
class SteerLMAdapter(Artifact):
    """A LoRA adapter trained by attribute-conditioned SFT, with its schema and prompt template."""

    method: ClassVar[str] = "steerlm"

    lora: dict[str, tuple[Tensor, Tensor]]  # module name -> (A (r, in), B (out, r))
    scaling: float
    schema: AttributeSchema
    template: str = DEFAULT_TEMPLATE
    chat: bool = True
    model: ModelFingerprint | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    placement: str = "assistant"

    def __post_init__(self) -> None:
        check_template(self.template, self.placement)
        if not self.lora:
            raise ArtifactError("a SteerLM adapter needs at least one adapted module")
        self.scaling = finite("scaling", self.scaling)
        ranks = set()
        for name, (a, b) in self.lora.items():
            # A (r, in), B (out, r), r below both widths (so swapped factors never pass)
            if (a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1] or a.shape[0] < 1
                    or a.shape[0] > min(a.shape[1], b.shape[0])):
                raise ArtifactError(f"LoRA factors of {name} have shapes A {tuple(a.shape)} and B {tuple(b.shape)}; "
                                    "expected A (r, in) and B (out, r) with r <= in, out")
            ranks.add(int(a.shape[0]))
        if len(ranks) > 1:
            raise ArtifactError(f"LoRA factors of one adapter must share one rank, got ranks {sorted(ranks)}")
        self.lora = {n: (a.detach().float().cpu().contiguous(), b.detach().float().cpu().contiguous())
                     for n, (a, b) in self.lora.items()}

    @property
    def prefers_chat(self) -> bool:
        return self.chat

    def controls(self) -> dict[str, Any]:
        return {**super().controls(), "attributes": {
            a.name: {"low": a.low, "high": a.high, "default": a.default, "description": a.description}
            for a in self.schema.attributes}}

    @property
    def rank(self) -> int:
        return next(iter(self.lora.values()))[0].shape[0]

    def parameter_count(self) -> int:
        return sum(a.numel() + b.numel() for a, b in self.lora.values())

    def prompt(self, prompt: str, attributes: Any = None) -> str:
        """The user's text for ``attributes`` (before any chat template): ``prompt`` itself unless
        the adapter is ``user``-placed."""
        return user_text(self.template, self.placement, prompt, self.schema.format(attributes))

    def response_prefix(self, attributes: Any = None) -> str:
        """What opens the model's turn for ``attributes`` (empty for ``user``-placed adapters)."""
        return turn_prefix(self.template, self.placement, self.schema.format(attributes))

    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        cfg = {"scaling": self.scaling, "rank": self.rank, "modules": sorted(self.lora),
               "schema": self.schema.to_json(), "schema_digest": self.schema.digest(),
               "template": self.template, "placement": self.placement, "chat": self.chat,
               "parameters": self.parameter_count(),
               "training": self.meta.get("training", {})}
        tensors: dict[str, Tensor] = {}
        for name, (a, b) in self.lora.items():
            tensors[f"{name}.lora_A"], tensors[f"{name}.lora_B"] = a, b
        return cfg, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Tensor], model: ModelFingerprint | None,
                   meta: dict[str, Any]) -> SteerLMAdapter:
        schema = AttributeSchema.from_json(config["schema"])
        if config.get("schema_digest") not in (None, schema.digest()):
            raise ArtifactError("the adapter's attribute schema does not match its recorded digest")
        lora = {}
        for name in config["modules"]:
            try:
                lora[name] = (tensors[f"{name}.lora_A"], tensors[f"{name}.lora_B"])
            except KeyError:
                raise ArtifactError(f"LoRA weights for {name} are missing") from None
        if config.get("training"):
            meta = {**meta, "training": config["training"]}
        if not isinstance(config["template"], str) or not isinstance(config.get("placement", "user"), str):
            raise ArtifactError("'template' and 'placement' must be strings")
        art = cls(lora, finite("scaling", config["scaling"]), schema, config["template"], bool(config["chat"]),
                  model, meta, config.get("placement", "user"))
        if "rank" in config and config["rank"] != art.rank:
            raise ArtifactError(f"config says rank {config['rank']!r} but the LoRA factors have rank {art.rank}")
        return art

    def __repr__(self) -> str:
        model = self.model.name if self.model else "any model"
        return (f"SteerLMAdapter({self.name!r}, rank={self.rank}, modules={len(self.lora)}, "
                f"attributes=[{','.join(self.schema.names)}], model={model!r})")
