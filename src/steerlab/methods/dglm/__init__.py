"""DGLM: diffusion-guided language modelling (Lovelace et al. 2024).

A diffusion model over sentence embeddings proposes where a continuation should go; a prompt
generator turns the proposal into soft prompts that condition the decoder; linear probes on the
embedding space steer the proposal. See ``data`` (pairs and their embeddings) and ``diffusion``
(the denoiser, its schedule and samplers).
"""
