"""Defaults every layer shares, importable without torch (the CLI reads them at start-up)."""

DEFAULT_MODEL = "smollm2-135m"
"""The packaged model used when none is named: SmolLM2-135M-Instruct, shipped offline."""
