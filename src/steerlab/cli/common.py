"""Helpers shared by CLI verbs: layer-list parsing, model loading with a status line, output."""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console

from steerlab.errors import SteerlabError

console = Console(stderr=True)
out = Console()


def parse_layers(spec: str | None) -> list[int] | None:
    """``"8-12"`` → 8..12, ``"3,5,7"``, ``"-1"``; None/"" → None (all)."""
    if not spec:
        return None
    layers: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", part)
        try:
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise ValueError
                layers.extend(range(lo, hi + 1))
            else:
                layers.append(int(part))
        except ValueError:
            raise SteerlabError(f"bad layer list {spec!r}: use e.g. 8-12 or 3,5,7") from None
    return layers


def parse_positions(spec: str) -> str | int:
    """``all``/``prompt``/``generated`` or an integer index."""
    return int(spec) if spec.lstrip("-").isdigit() else spec


def parse_opts(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when they can be (numbers, lists), else strings."""
    opts: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SteerlabError(f"bad --opt {item!r}: use key=value")
        try:
            opts[key] = json.loads(raw)
        except json.JSONDecodeError:
            opts[key] = raw
    return opts


def load(name: str) -> Any:
    """Load a model with a spinner."""
    from transformers.utils import logging as hf_logging

    from steerlab.models.loading import load_model

    hf_logging.disable_progress_bar()
    with console.status(f"loading {name} (first use converts the packaged GGUF, ~30 s)"):
        lm = load_model(name)
    console.print(f"[dim]loaded {lm.name}: {lm.num_layers} layers, hidden {lm.hidden_size}, "
                  f"{lm.load_seconds:.1f} s[/dim]")
    return lm


def print_json(obj: Any) -> None:
    out.print_json(json.dumps(obj, default=str))
