"""``steerlab bench``: steered vs unsteered tokens/s, as ratios measured in one run."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from steerlab.cli.common import OVERWRITE, load, out


def bench(model: str = typer.Option("smollm2-135m", "--model", "-m"),
          threads: int = typer.Option(1, min=1, help="torch threads (1 is steadiest on small CPUs)."),
          new_tokens: int = typer.Option(32, min=1),
          batch: int = typer.Option(32, min=1),
          repeats: int = typer.Option(3, min=1),
          save: Path | None = typer.Option(None, help="Write the JSON result here."),
          overwrite: bool = OVERWRITE) -> None:
    """Benchmark steering overhead (ratios to unsteered, side by side in one run)."""
    import torch

    from steerlab.bench import bench_steering
    from steerlab.core.atomic import atomic_file, check_file_target
    from steerlab.methods.vectors import extract

    if save:
        check_file_target(save, overwrite=overwrite, what="benchmark results")
    torch.set_num_threads(threads)
    lm = load(model)
    vec = extract(lm, "sentiment")
    r = bench_steering(lm, vec, new_tokens=new_tokens, batch=batch, repeats=repeats)
    table = Table(title=f"steering overhead on {lm.name} "
                        f"({threads} thread(s), {new_tokens} tokens, median of {repeats})")
    table.add_column("case")
    table.add_column("tokens/s", justify="right")
    for k, v in r["tokens_per_s"].items():
        table.add_row(k, f"{v:.1f}")
    out.print(table)
    ratios = Table(title="ratios (target)")
    ratios.add_column("ratio")
    ratios.add_column("value", justify="right")
    ratios.add_column("target", justify="right")
    for k, v in r["ratios"].items():
        ok = "✓" if v >= r["targets"][k] else "✗"
        ratios.add_row(k, f"{v:.3f} {ok}", f"≥ {r['targets'][k]}")
    out.print(ratios)
    if save:
        with atomic_file(save, overwrite=overwrite, what="benchmark results") as tmp:
            tmp.write_text(json.dumps(r, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
