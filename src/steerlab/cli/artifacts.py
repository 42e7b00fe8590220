"""``steerlab artifacts``: the named artifacts that ship with steerlab, with their eval cards."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from steerlab.cli.common import out, print_json


def artifacts(json_out: bool = typer.Option(False, "--json", help="Print every field as JSON.")) -> None:
    """List the shipped artifacts: steer with any of them by name (--steer NAME), no training."""
    from steerlab.artifacts import shipped

    rows = []
    for name, art in sorted(shipped().items()):
        cfg = art.config()
        rows.append({"name": name, "method": cfg["method"], "model": (cfg.get("model") or {}).get("name"),
                     "description": art.description, "recommended": art.recommended, "companions": art.companions,
                     "eval_card": cfg.get("eval_card") or {}, "path": str(art.path)})
    if json_out:
        print_json(rows)
        return
    table = Table(title="shipped artifacts: steer with --steer NAME", show_lines=True)
    table.add_column("name", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("start from")
    table.add_column("eval card")
    for r in rows:
        rec = r["recommended"]
        start = f"strength {rec.get('strength', 1)}" + (f" {json.dumps(rec['options'])}" if rec.get("options") else "")
        table.add_row(r["name"], r["method"], start, str(r["eval_card"].get("summary") or "not measured yet"))
    out.print(table)
    for r in rows:
        extra = "".join(f"; {role}: {folder}" for role, folder in r["companions"].items())
        out.print(f"[bold]{r['name']}[/bold] ({r['model'] or 'any model'}): {r['description']}{extra}")


def register(app: typer.Typer) -> None:
    app.command("artifacts")(artifacts)
