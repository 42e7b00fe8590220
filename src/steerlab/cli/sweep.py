"""``steerlab sweep-layers``: which layer moves the attribute most."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from steerlab.cli.common import load, model_for, out, parse_layers, print_json
from steerlab.errors import SteerlabError


def sweep_layers(
    path: Path = typer.Argument(..., help="Vector artifact directory."),
    strength: float = typer.Option(6.0, "--strength", "-s"),
    layers: str = typer.Option("", help="Layers to try (default: all of the vector's)."),
    scorer: str = typer.Option("vader", help="Scorer name."),
    prompts: str = typer.Option("neutral", help="Prompt set name or file."),
    n_prompts: int = typer.Option(10, min=1, help="How many prompts."),
    max_new_tokens: int = typer.Option(24, min=1),
    model: str = typer.Option("", "--model", "-m", help="Model (default: the vector's packaged model)."),
    save: bool = typer.Option(False, help="Store the result in the artifact's eval card."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Steer each layer alone and score the generations; prints the effect per layer."""
    from steerlab.core.artifact import load_artifact, update_eval_card
    from steerlab.data.pairs import load_prompts
    from steerlab.methods.vectors import SteeringVector
    from steerlab.methods.vectors import sweep_layers as do_sweep
    from steerlab.scoring.scorers import get_scorer

    vec = load_artifact(path)
    if not isinstance(vec, SteeringVector):
        raise SteerlabError("sweep-layers needs a vector artifact")
    lm = load(model_for(model, [vec]))
    result = do_sweep(lm, vec, load_prompts(prompts)[:n_prompts], get_scorer(scorer), strength=strength,
                      layers=parse_layers(layers), max_new_tokens=max_new_tokens)
    if save:
        update_eval_card(path, {"layer_sweep": result.to_dict()})
    if json_out:
        print_json(result.to_dict())
        return
    table = Table(title=f"{scorer} per layer at strength {strength:g} (unsteered {result.baseline:+.3f})")
    table.add_column("layer", justify="right")
    table.add_column("mean score", justify="right")
    table.add_column("effect", justify="right")
    for layer, score in result.scores.items():
        mark = " ◀ best" if layer == result.best() else ""
        table.add_row(str(layer), f"{score:+.3f}", f"{result.effects[layer]:+.3f}{mark}")
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("sweep-layers")(sweep_layers)
