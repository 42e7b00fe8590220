"""Contrastive data formats and the attribute sets that ship with steerlab."""

from steerlab.data.pairs import BUILTIN, ContrastSet, as_contrast, load_contrast, load_prompts

__all__ = ["BUILTIN", "ContrastSet", "as_contrast", "load_contrast", "load_prompts"]
