"""Batched generation with per-row steering, chat templates, sampling and stop strings."""

from steerlab.generation.generate import format_prompt, generate

__all__ = ["format_prompt", "generate"]
