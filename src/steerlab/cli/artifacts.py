"""``steerlab artifacts``: the named artifacts that ship with steerlab, with their eval cards."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from steerlab.cli.common import out, print_json


def artifacts(json_out: bool = typer.Option(False, "--json", help="Print every field as JSON.")) -> None:
    """List the shipped artifacts: steer with any of them by name (--steer NAME), no training."""
    from steerlab.artifacts import cards, shipped

    rows = []
    for name, art in sorted(shipped().items()):
        cfg = art.config()
        card = art.eval_card
        rows.append({"name": name, "method": cfg["method"], "model": (cfg.get("model") or {}).get("name"),
                     "description": art.description, "recommended": art.recommended, "companions": art.companions,
                     "by_task": [r.describe() for r in cards.recommendations(card)],
                     "summary": cards.summary(card), "eval_card": card, "path": str(art.path)})
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
        start = f"strength {rec.get('strength', 1):g}"
        if rec.get("options"):
            start += f" {json.dumps(rec['options'])}"
        if r["by_task"]:
            start += "\n" + "\n".join(r["by_task"])
        table.add_row(r["name"], r["method"], start, r["summary"] or "not measured yet")
    out.print(table)
    for r in rows:
        extra = "".join(f"; {role}: {folder}" for role, folder in r["companions"].items())
        out.print(f"[bold]{r['name']}[/bold] ({r['model'] or 'any model'}): {r['description']}{extra}")


def register(app: typer.Typer) -> None:
    app.command("artifacts")(artifacts)
