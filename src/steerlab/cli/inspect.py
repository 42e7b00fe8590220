"""``steerlab inspect``: what an artifact holds (method, model, layers, norms, provenance), its
training curve and its eval card per task."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from steerlab.cli.common import out, print_json


def inspect(path: Path = typer.Argument(..., help="Artifact directory, or a shipped artifact's name."),
            json_out: bool = typer.Option(False, "--json", help="Print the full config as JSON.")) -> None:
    """Show an artifact's config and per-layer statistics."""
    from steerlab.artifacts import cards, shipped_path, training
    from steerlab.core.artifact import load_artifact, read_config

    if not path.exists():
        path = shipped_path(str(path)) or path  # a shipped name; else the loader names the missing folder

    doc = read_config(path)
    art = load_artifact(path)  # also verifies the weights file
    if json_out:
        print_json(doc)
        return
    model = doc.get("model") or {}
    out.print(f"[bold]{doc.get('name') or art.name}[/bold]  method={doc['method']}  "
              f"format={doc['format_version']}  steerlab {doc.get('library_version')}")
    out.print(f"model: {model.get('name', '?')} ({model.get('model_type', '?')}, hidden "
              f"{model.get('hidden_size', '?')}, {model.get('num_layers', '?')} layers, "
              f"weights {str(model.get('weights_hash', ''))[:12]})")
    prov = dict(doc.get("provenance") or {})
    if isinstance(prov.get("text_hashes"), list):  # hundreds of digests: the count is what a reader wants
        prov["text_hashes"] = f"<{len(prov['text_hashes'])} hashes of training texts; --json lists them>"
    out.print(f"provenance: {prov}")
    stats = art.meta.get("stats") or {}  # validated on load
    if stats:
        table = Table(title="per-layer statistics")
        for col in ("layer", "norm", "pos proj", "neg proj", "separation acc"):
            table.add_column(col, justify="right")
        for layer, s in sorted(stats.items(), key=lambda kv: int(kv[0])):
            table.add_row(layer, f"{s['norm']:.2f}", f"{s['pos_proj']:.2f}", f"{s['neg_proj']:.2f}",
                          f"{s['accuracy']:.2f}")
        out.print(table)
    for curve in training.curves(doc):
        out.print(f"training: {training.describe(curve)}", markup=False, highlight=False)
    for line in cards.lines(doc.get("eval_card") or {}):
        out.print(f"eval card: {line}", markup=False, highlight=False)
    if doc.get("eval_card"):
        out.print("(every measured row: --json)", style="dim")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
