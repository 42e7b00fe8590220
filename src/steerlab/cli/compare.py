"""``steerlab compare``: the comparison table of every shipped steer (and any artifact folders
given) on every task its eval card measured, against unsteered and prompting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from steerlab.cli.common import out


def compare(artifacts: list[Path] = typer.Argument(None, help="More artifact folders to include."),
            out_path: Path | None = typer.Option(None, "--out", "-o", help="Write the page here (markdown)."),
            include_shipped: bool = typer.Option(True, "--shipped/--no-shipped", help="Include the shipped artifacts.")
            ) -> None:
    """Print (or write) the comparison page built from eval cards."""
    import json

    from steerlab.artifacts import cards, shipped, training
    from steerlab.core.atomic import atomic_file
    from steerlab.errors import SteerlabError

    entries: list[tuple[str, str, str, dict[str, Any]]] = []
    docs: list[tuple[str, dict[str, Any]]] = []  # (name, config document): the training section
    if include_shipped:
        for name, art in sorted(shipped().items()):
            cfg = art.config()
            entries.append((name, cfg["method"], (cfg.get("model") or {}).get("name") or "any", art.eval_card))
            docs.append((name, cfg))
    for folder in artifacts or []:
        config = folder / "steer_config.json"
        if not config.is_file():
            raise SteerlabError(f"{folder} is not an artifact folder (no steer_config.json)")
        cfg = json.loads(config.read_text(encoding="utf-8"))
        entries.append((folder.name, cfg["method"], (cfg.get("model") or {}).get("name") or "any",
                        cfg.get("eval_card") or {}))
        docs.append((folder.name, cfg))
    page = cards.comparison_page(entries)
    if trained := training.section(docs):
        page += "\n" + trained
    if out_path is None:
        out.print(page, markup=False, highlight=False)
        return
    with atomic_file(out_path, overwrite=True) as tmp:
        tmp.write_text(page, encoding="utf-8")
    out.print(f"wrote {out_path}")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
