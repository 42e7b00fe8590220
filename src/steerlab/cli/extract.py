"""``steerlab extract``: contrastive data → steering vector artifact; ``steerlab distil``: the
model's own instructed continuations → steering vector artifact."""

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


def distil(
    prompts: str = typer.Option(..., "--prompts", "-p",
                                help="Openings to continue: a text file, one per line (not your evaluation prompts)."),
    positive: str = typer.Option(..., "--positive", help="Instruction for the + side, e.g. 'Continue the following "
                                                         "text in a very positive, happy tone.'"),
    negative: str = typer.Option("", "--negative", help="Instruction for the - side (default: none, the model's "
                                                        "own continuation)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Artifact directory to write."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Packaged name, local dir or hub id."),
    max_new_tokens: int = typer.Option(24, min=1, help="Tokens per continuation."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (> 0)."),
    top_p: float = typer.Option(0.9, help="Nucleus sampling."),
    seed: int = typer.Option(0, help="Sampling seed."),
    samples: int = typer.Option(1, min=1, help="Continuations drawn per opening and instructed side; "
                                              "--rank-by keeps one."),
    rank_by: str = typer.Option("", help="Scorer that keeps the draw with the most (+ side) or least (- side) of "
                                         "the attribute, e.g. vader, sentiment, toxicity (needs --samples > 1)."),
    layers: str = typer.Option("", help="Layers to record, e.g. 8-16 or 4,8,12 (default: all)."),
    site: str = typer.Option("block", help="block (residual stream), mlp or attn."),
    read: str = typer.Option("mean", help="Token positions read: mean (default), last or all."),
    aggregator: str = typer.Option("mean_diff", help="mean_diff, pca_diff, pca_center or probe."),
    name: str = typer.Option("", help="Name stored in the artifact."),
    pairs_out: Path = typer.Option(None, "--pairs-out", help="Also write the pairs (jsonl, steerlab extract's "
                                                             "format) to this new file."),
    batch_size: int = typer.Option(16, min=1, help="Texts per forward pass."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Distil an instruction into a steering vector: the model continues each opening under the
    + and - instructions, and the direction is read from those pairs with the instructions dropped."""
    import json

    from steerlab.data.pairs import load_prompts
    from steerlab.errors import DataError
    from steerlab.methods.vectors import distil as do_distil
    from steerlab.scoring.scorers import get_scorer

    openings = load_prompts(prompts)
    if samples > 1 and not rank_by:
        raise DataError("--samples > 1 needs --rank-by SCORER to choose among the draws")
    if rank_by and samples == 1:
        raise DataError("--rank-by chooses among draws: give --samples > 1 as well")
    ranker = get_scorer(rank_by) if rank_by else None
    check_artifact_out(out_dir, overwrite)
    if pairs_out is not None and pairs_out.exists() and not overwrite:
        raise DataError(f"{pairs_out} exists; pass --overwrite to replace it")
    lm = load(model)
    vec, pairs = do_distil(lm, openings, positive, negative, max_new_tokens=max_new_tokens, temperature=temperature,
                           top_p=top_p, seed=seed, samples=samples, rank_by=ranker, layers=parse_layers(layers),
                           site=site, read=read, aggregator=aggregator, batch_size=batch_size, name=name or None)
    if rank_by:
        vec.meta["provenance"]["distilled"]["rank_by"] = rank_by
    vec.save(out_dir, overwrite=overwrite)
    if pairs_out is not None:
        pairs_out.write_text("".join(json.dumps({"positive": a, "negative": b}) + "\n"
                                     for a, b in zip(pairs.positive, pairs.negative)))
    stats = vec.meta.get("stats", {})
    best = max(stats, key=lambda k: stats[k]["accuracy"]) if stats else None
    console.print(f"saved {vec!r} from {len(openings)} openings to {out_dir}"
                  + (f" (best separating layer: {best})" if best else ""))


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.command("distil")(distil)
