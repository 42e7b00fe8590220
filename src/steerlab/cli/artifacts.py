"""``steerlab artifacts``: the named artifacts that ship with steerlab, one line each; with a name,
that artifact's card."""

from __future__ import annotations

from typing import Any

import typer

from steerlab.cli.common import out, print_json


def artifacts(name: str = typer.Argument(None, help="A shipped artifact: show its card (as steerlab inspect)."),
              json_out: bool = typer.Option(False, "--json", help="Print every field as JSON.")) -> None:
    """List the shipped artifacts: steer with any of them by name (--steer NAME), no training."""
    from steerlab.artifacts import cards, shipped

    found = shipped()
    if name is not None:
        if name not in found:
            from steerlab.errors import SteerlabError

            raise SteerlabError(f"no shipped artifact {name!r}; shipped: {', '.join(sorted(found))}")
        from steerlab.cli.inspect import inspect

        return inspect(found[name].path, json_out=json_out)
    rows = []
    for key, art in sorted(found.items()):
        cfg = art.config()
        card = art.eval_card
        rows.append({"name": key, "method": cfg["method"], "model": (cfg.get("model") or {}).get("name"),
                     "description": art.description, "recommended": art.recommended, "companions": art.companions,
                     "by_task": [r.describe() for r in cards.recommendations(card)],
                     "summary": cards.summary(card), "eval_card": card, "path": str(art.path)})
    if json_out:
        print_json(rows)
        return
    cells = [(r["name"], r["method"], r["model"] or "any", start_from(r["recommended"])) for r in rows]
    head = ("name", "method", "model", "start from")
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(3)]
    room = max(out.width - sum(widths) - 6, 12)  # the last column gives way at a narrow terminal

    def line(c: tuple[str, str, str, str]) -> str:
        last = c[3] if len(c[3]) <= room else c[3][: room - 1] + "…"
        return "  ".join([*(c[i].ljust(widths[i]) for i in range(3)), last]).rstrip()

    out.print("shipped artifacts: steer with --steer NAME; the card: steerlab artifacts NAME", style="dim")
    out.print(line(head), style="bold", markup=False, highlight=False)
    for c in cells:
        out.print(line(c), markup=False, highlight=False, soft_wrap=True)


def start_from(recommended: dict[str, Any]) -> str:
    """The recommended setting in one short line, as the eval cards write settings:
    ``x3 L8 generated · sentiment-positive``, ``x4 guide=sentiment:positive weight=10 · …``."""
    from steerlab.artifacts.cards import setting

    options = dict(recommended.get("options") or {})
    parts = [setting({"strength": float(recommended.get("strength", 1)), "options": options}, {})]
    for key, value in options.items():
        if key in ("layers", "operator", "clamp_value", "positions"):
            continue  # written by setting()
        if isinstance(value, dict):
            value = ",".join(f"{k}:{v}" for k, v in value.items())
        parts.append(f"{key}={value}")
    text = " ".join(parts)
    return f"{text} · {recommended['task']}" if recommended.get("task") else text


def register(app: typer.Typer) -> None:
    app.command("artifacts")(artifacts)
