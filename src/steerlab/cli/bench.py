"""``steerlab bench``: steered vs unsteered tokens/s, as ratios measured in one run."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from steerlab.cli.common import OVERWRITE, console, load, out
from steerlab.defaults import DEFAULT_MODEL


def bench(model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
          threads: int = typer.Option(1, min=1, help="torch threads (1 is steadiest on small CPUs)."),
          new_tokens: int = typer.Option(32, min=1),
          batch: int = typer.Option(32, min=1),
          repeats: int = typer.Option(7, min=1, help="Repeats, each in a rotated case order (7+ to resolve "
                                      "a few per cent)."),
          save: Path | None = typer.Option(None, help="Write the JSON result here."),
          overwrite: bool = OVERWRITE) -> None:
    """Benchmark steering overhead: paired ratios to unsteered, measured side by side in one run."""
    import torch

    from steerlab.bench import bench_steering
    from steerlab.core.atomic import atomic_file, check_file_target
    from steerlab.methods.vectors import extract

    if save:
        check_file_target(save, overwrite=overwrite, what="benchmark results")
    torch.set_num_threads(threads)
    lm = load(model)
    vec = extract(lm, "sentiment")
    adapter = _shipped(lm, "steerlm")
    dglm = _shipped(lm, "dglm")
    with console.status(f"benchmarking: {repeats} repeats of every case"):
        r = bench_steering(lm, vec, new_tokens=new_tokens, batch=batch, repeats=repeats, steerlm=adapter, dglm=dglm)
    table = Table(title=f"steering overhead on {lm.name} ({threads} thread(s), {new_tokens} tokens, "
                        f"batch {batch}, median of {repeats})")
    table.add_column("case")
    table.add_column("tokens/s", justify="right")
    for k, v in r["tokens_per_s"].items():
        table.add_row(k.replace("bB", f"b{batch}"), f"{v:.1f}")
    out.print(table)
    ratios = Table(title="paired ratios (each repeat's numerator / its own denominator)")
    for col in ("ratio", "median", "min–max", "target", "verdict"):
        ratios.add_column(col, justify="left" if col == "ratio" else "right")
    marks = {"pass": "✓ pass", "fail": "✗ fail", "noise": "≈ noise"}
    for k, v in r["ratios"].items():
        ratios.add_row(k, f"{v['median']:.3f}", f"{v['min']:.3f}–{v['max']:.3f}", f"≥ {v['target']}",
                       marks[v["verdict"]])
    out.print(ratios)
    if save:
        with atomic_file(save, overwrite=overwrite, what="benchmark results") as tmp:
            tmp.write_text(json.dumps(r, indent=2) + "\n")


def _shipped(lm: object, method: str) -> object | None:
    """A shipped artifact of ``method`` made for ``lm`` (for that method's cases), else None."""
    from steerlab.artifacts import shipped
    from steerlab.core.artifact import load_artifact
    from steerlab.errors import SteerlabError

    for name, entry in shipped().items():
        if entry.config()["method"] != method:
            continue
        art = load_artifact(name)
        try:
            if art.model is not None:
                art.model.check(lm.fingerprint)  # type: ignore[attr-defined]
        except SteerlabError:
            continue
        return art
    return None


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
