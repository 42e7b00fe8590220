"""SteerLM (NVIDIA; Dong et al., 2023): value model → annotation → attribute-conditioned SFT →
bootstrap → attribute knobs at inference, on small Hugging Face models with LoRA."""

from steerlab.core.methods import MethodSpec, register_method
from steerlab.methods.steerlm.artifact import DEFAULT_TEMPLATE, SteerLMAdapter
from steerlab.methods.steerlm.config import SFTConfig
from steerlab.methods.steerlm.records import Example, read_records, write_records
from steerlab.methods.steerlm.schema import DEFAULT_SCHEMA, Attribute, AttributeSchema
from steerlab.methods.steerlm.sft import train_sft
from steerlab.methods.steerlm.steerer import SteerLMOptions, SteerLMSteerer

METHOD = register_method(MethodSpec("steerlm", SteerLMAdapter, SteerLMSteerer,
                                    description="attribute-conditioned LoRA adapter with 0-4 knobs"))

__all__ = ["DEFAULT_SCHEMA", "DEFAULT_TEMPLATE", "Attribute", "AttributeSchema", "Example", "METHOD", "SFTConfig",
           "SteerLMAdapter", "SteerLMOptions", "SteerLMSteerer", "read_records", "train_sft", "write_records"]
