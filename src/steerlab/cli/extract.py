"""``steerlab extract``: contrastive data → steering vector artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from steerlab.cli.common import OVERWRITE, check_artifact_out, console, load, parse_layers
from steerlab.defaults import DEFAULT_MODEL


def extract(
    data: str = typer.Option(..., "--data", "-d", help="jsonl file, or built-in set: sentiment, formality."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Artifact directory to write."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Packaged name, local dir or hub id."),
    layers: str = typer.Option("", help="Layers to record, e.g. 8-16 or 4,8,12 (default: all)."),
    site: str = typer.Option("block", help="block (residual stream), mlp or attn."),
    read: str = typer.Option("last", help="Token positions read: last, mean or all."),
    aggregator: str = typer.Option("mean_diff", help="mean_diff, pca_diff, pca_center or probe."),
    name: str = typer.Option("", help="Name stored in the artifact."),
    batch_size: int = typer.Option(16, min=1, help="Texts per forward pass."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Extract a steering vector from positive/negative texts."""
    from steerlab.data.pairs import as_contrast
    from steerlab.methods.vectors import extract as do_extract

    contrast = as_contrast(data)  # fail on bad data or a bad --out before spending time on the model
    check_artifact_out(out_dir, overwrite)
    lm = load(model)
    vec = do_extract(lm, contrast, layers=parse_layers(layers), site=site, read=read,
                     aggregator=aggregator, batch_size=batch_size, name=name or None)
    vec.save(out_dir, overwrite=overwrite)
    stats = vec.meta.get("stats", {})
    best = max(stats, key=lambda k: stats[k]["accuracy"]) if stats else None
    console.print(f"saved {vec!r} to {out_dir}" + (f" (best separating layer: {best})" if best else ""))


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
