"""DGLM: diffusion-guided language modelling (Lovelace et al. 2024).

A diffusion model over sentence embeddings proposes where a continuation should go; a prompt
generator turns the proposal into soft prompts that condition the decoder (adapted with a LoRA);
linear probes on the embedding space steer the proposal. Modules: ``data`` (pairs and their
embeddings), ``diffusion`` (denoiser, schedule, samplers), ``train`` (diffusion training),
``decoder`` (prompt generator and decoder training), ``artifact``, ``steerer``.
"""

from steerlab.core.methods import MethodSpec, register_method
from steerlab.methods.dglm.artifact import DGLMArtifact, Probe
from steerlab.methods.dglm.steerer import DGLMOptions, DGLMSteerer

METHOD = register_method(MethodSpec("dglm", DGLMArtifact, DGLMSteerer,
                                    description="diffusion proposal in embedding space -> soft prompts, probe-steered"))

__all__ = ["DGLMArtifact", "DGLMOptions", "DGLMSteerer", "METHOD", "Probe"]
