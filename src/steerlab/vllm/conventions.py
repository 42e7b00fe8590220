"""What a vLLM decoder layer returns, so ``block`` steering edits the residual stream and nothing else.

vLLM's decoder layers do not agree on their output. Three conventions, read from vLLM's model
sources and keyed here by the decoder layer's class name:

- ``pair``: ``(hidden, residual)`` whose *sum* is the residual stream; the next layer (or the final
  norm) adds them in a fused add-and-norm. Llama, Qwen, Mistral, Gemma, Mixtral, DeepSeek, ...
  Steering collapses a steered token into ``(stream + delta, 0)``, which the next layer reads
  exactly as it would the pair.
- ``first``: the first item *is* the stream (a tensor, or a tuple whose other items the next
  layer ignores). StableLM, Cohere / Command-R / Cohere2, Exaone4 and PhiMoE return
  ``(stream, a stale mid-layer residual)`` that the model loop drops; GPT-2, OPT, Falcon, Bloom,
  Granite return the stream alone. Steering edits the first item and passes the rest through.
- unknown: a layer class not in the table. ``block`` steering is refused for it, naming the class,
  rather than guessed: adding the stale residual of a ``first`` layer is silently wrong output.

:func:`layer_convention` also checks the declaration against the layer (a ``pair`` layer must take
the incoming ``residual``: it is the one that sums it), so a vLLM release that changes a layer's
signature refuses instead of steering wrongly. A layer cannot be run outside vLLM's forward
context (its attention needs the step's metadata), so the check reads the signature, not a run.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

Convention = Literal["pair", "first"]

PAIR_LAYERS = frozenset({
    "AXK1DecoderLayer", "AfmoeDecoderLayer", "ApertusDecoderLayer", "BailingMoeBlock", "BailingMoeV25DecoderLayer",
    "BailingMoeV3DecoderLayer", "Cosmos3EdgeAttentionDecoderLayer", "DeepseekV2DecoderLayer",
    "Ernie4_5_MoeDecoderLayer", "Ernie4_5_VLMoeDecoderLayer", "ExaoneDecoderLayer", "ExaoneMoeDecoderLayer",
    "FalconH1AttentionDecoderLayer", "FalconH1SSMDecoderLayer", "FlashDecoderLayer", "Gemma2DecoderLayer",
    "Gemma3DecoderLayer", "GemmaDecoderLayer", "Glm4DecoderLayer", "Glm4MoeDecoderLayer", "Glm4MoeLiteDecoderLayer",
    "HYV3DecoderLayer", "InternLMDecoderLayer", "InternS1ProMoeDecoderLayer", "JambaAttentionDecoderLayer",
    "JambaMambaDecoderLayer", "K2HorizonDecoderLayer", "LagunaDecoderLayer", "Lfm2AttentionDecoderLayer",
    "Lfm2MoeAttentionDecoderLayer", "Lfm2MoeShortConvDecoderLayer", "Lfm2ShortConvDecoderLayer",
    "Llama4DecoderLayer", "LlamaDecoderLayer", "Mamba2DecoderLayer", "MambaDecoderLayer", "MiMoV2FlashDecoderLayer",
    "MiniMaxM2DecoderLayer", "MistralDecoderLayer", "MixtralDecoderLayer", "Molmo2DecoderLayer", "MolmoDecoderLayer",
    "NemotronDecoderLayer", "NemotronHAttentionDecoderLayer", "NemotronHMLPDecoderLayer", "NemotronHMambaDecoderLayer",
    "NemotronHMoEDecoderLayer", "OlmoeDecoderLayer", "OpenPanguDecoderLayer", "Param2MoEDecoderLayer",
    "Plamo3DecoderLayer", "Qwen2DecoderLayer", "Qwen2MoeDecoderLayer", "Qwen3DecoderLayer", "Qwen3MoeDecoderLayer",
    "Qwen3NextDecoderLayer", "Rnj1DecoderLayer", "SarvamMLABlock", "SolarDecoderLayer", "Step3TextDecoderLayer",
    "StepDecoderLayer", "TransformerBlock",
})
"""Layers returning ``(hidden, residual)`` whose sum is the stream (vLLM 0.32's model sources)."""

FIRST_LAYERS = frozenset({
    # (stream, stale residual): the model loop drops the second item
    "StablelmDecoderLayer", "CohereDecoderLayer", "Cohere2MoeDecoderLayer", "CohereCompassDecoderLayer",
    "Exaone4DecoderLayer", "PhiMoEDecoderLayer", "HyperCLOVAXDecoderLayer", "MolmoDecoderNormAfterLayer",
    "Molmo2DecoderNormAfterLayer", "MuseGlimmerDecoderLayer", "GraniteMoeHybridAttentionDecoderLayer",
    "GraniteMoeHybridMambaDecoderLayer", "MiniCPMDecoderLayer", "Gemma4DecoderLayer",
    # the stream alone
    "GPT2Block", "GPTJBlock", "OPTDecoderLayer", "FalconDecoderLayer", "BloomBlock", "GLMBlock", "DbrxBlock",
    "GraniteDecoderLayer", "GraniteMoeDecoderLayer", "GraniteMoeSharedDecoderLayer", "OrionDecoderLayer",
    "Step3p5DecoderLayer", "Moondream3DecoderLayer", "OlmoHybridDecoderLayer", "HrmTextDecoderLayer",
    "LoopCoderDecoderLayer", "Zamba2AttentionDecoderLayer", "Zamba2MambaDecoderLayer", "Zamba2HybridLayer",
    # transformers' own layers (vLLM's Transformers backend, steerlab's tests): the stream first
})
"""Layers whose first output item is the stream (vLLM 0.32's model sources)."""

PAIR_MODELS = frozenset({
    "AXK1ForCausalLM", "AfmoeForCausalLM", "ApertusForCausalLM", "BailingMoeForCausalLM",
    "BailingMoeV25ForCausalLM", "BailingMoeV2ForCausalLM", "BailingMoeV3ForCausalLM", "DFlashLagunaForCausalLM",
    "DeepseekForCausalLM", "DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "Eagle3LlamaForCausalLM",
    "Eagle3Qwen3ForCausalLM", "EagleDeepseekV3ForCausalLM", "EagleLlama4ForCausalLM", "EagleLlamaForCausalLM",
    "EagleMistralForCausalLM", "Ernie4_5_MoeForCausalLM", "ExaoneForCausalLM", "ExaoneMoeForCausalLM",
    "FalconH1ForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "GemmaForCausalLM", "Glm4ForCausalLM",
    "Glm4MoeForCausalLM", "Glm4MoeLiteForCausalLM", "GptOssForCausalLM", "HYV3ForCausalLM",
    "InternLM2ForCausalLM", "JambaForCausalLM", "K2HorizonForCausalLM", "LagunaForCausalLM", "Lfm2ForCausalLM",
    "Lfm2MoeForCausalLM", "Llama4ForCausalLM", "LlamaForCausalLM", "LongcatFlashForCausalLM",
    "Mamba2ForCausalLM", "MambaForCausalLM", "MiMoV2FlashForCausalLM", "MiMoV2ForCausalLM",
    "MiniMaxM2ForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "NemotronForCausalLM",
    "NemotronHForCausalLM", "OlmoeForCausalLM", "PanguEmbeddedForCausalLM", "PanguProMoEV2ForCausalLM",
    "PanguUltraMoEForCausalLM", "Param2MoEForCausalLM", "Plamo3ForCausalLM", "Qwen2ForCausalLM",
    "Qwen2MoeForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "Qwen3NextForCausalLM",
    "Qwen3_5ForCausalLM", "Qwen3_5MoeForCausalLM", "Rnj1ForCausalLM", "SarvamMLAForCausalLM",
    "SarvamMoEForCausalLM", "SolarForCausalLM", "Step1ForCausalLM", "Step3TextForCausalLM",
    "TeleChat2ForCausalLM", "UnlimitedOCRForCausalLM",
})
"""vLLM model classes whose decoder layers are ``pair`` layers (a subclass inherits its base's entry)."""

FIRST_MODELS = frozenset({
    "BloomForCausalLM", "ChatGLMForCausalLM", "Cohere2MoeForCausalLM", "CohereForCausalLM", "DbrxForCausalLM",
    "EagleCohereForCausalLM", "Exaone4ForCausalLM", "FalconForCausalLM", "GPT2LMHeadModel", "GPTJForCausalLM",
    "Gemma4ForCausalLM", "GraniteForCausalLM", "GraniteMoeForCausalLM", "GraniteMoeHybridForCausalLM",
    "GraniteMoeSharedForCausalLM", "HrmTextForCausalLM", "HyperCLOVAXForCausalLM", "IQuestLoopCoderForCausalLM",
    "MiniCPM3ForCausalLM", "MiniCPMForCausalLM", "Moondream3ForCausalLM", "MuseGlimmerForCausalLM",
    "OPTForCausalLM", "OlmoHybridForCausalLM", "OrionForCausalLM", "PhiMoEForCausalLM", "StablelmForCausalLM",
    "Step3p5ForCausalLM", "Zamba2ForCausalLM",
})
"""vLLM model classes whose decoder layers are ``first`` layers."""


PARALLEL_MODELS = frozenset({"CohereForCausalLM", "Cohere2MoeForCausalLM", "EagleCohereForCausalLM",
                             "GPTJForCausalLM"})
"""Model classes whose layers add attention and MLP outputs in one parallel block, all-reduced
together at tensor parallel > 1, so each rank's ``mlp`` / ``attn`` output is a partial sum: a vector
added there would be added once per rank."""


def model_convention(model_cls: type) -> Convention | None:
    """The convention of a vLLM model class's decoder layers (its own entry or its nearest base's),
    or None where steerlab does not know it."""
    for klass in model_cls.__mro__:
        if klass.__name__ in PAIR_MODELS:
            return "pair"
        if klass.__name__ in FIRST_MODELS:
            return "first"
    return None


def parallel_block(model_cls: type) -> bool:
    """Whether a vLLM model class (or its nearest listed base) is in :data:`PARALLEL_MODELS`."""
    return any(klass.__name__ in PARALLEL_MODELS for klass in model_cls.__mro__)


def unknown_block(model_name: str) -> str:
    """The refusal for ``block`` steering on a model whose layer convention is unknown."""
    return (f"steerlab does not know what vLLM's {model_name} decoder layers return (the residual stream, or a "
            "pair to sum), so it does not steer their block output; steer site 'mlp' or 'attn', or use steerlab's "
            "own engine")


def layer_convention(layer: Any, declared: Convention | None = None) -> Convention:
    """The convention of ``layer`` (a decoder layer module), checked against its forward's signature
    and against ``declared`` (the model class's entry). transformers' own layers (steerlab's engine,
    vLLM's Transformers backend) return the stream first. Raises ``ValueError`` naming the class where
    it is unknown or does not match."""
    klass = type(layer)
    name = klass.__name__
    if not klass.__module__.startswith("vllm."):
        found: Convention | None = "first"
    else:
        found = "pair" if name in PAIR_LAYERS else "first" if name in FIRST_LAYERS else None
    if found is None:
        raise ValueError(unknown_block(name))
    if declared is not None and declared != found:
        raise ValueError(f"vLLM's {name} is listed as a {found!r} layer but its model as {declared!r}; this vLLM "
                         "release changed it")
    if found == "pair":
        try:
            params = inspect.signature(klass.forward).parameters  # the class's: an instance's may be wrapped
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        if "residual" not in params:
            raise ValueError(f"vLLM's {name} is listed as returning (hidden, residual) but its forward takes no "
                             "residual; this vLLM release changed it")
    return found
