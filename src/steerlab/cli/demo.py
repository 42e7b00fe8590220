"""``steerlab demo``: the main job on the default packaged model (see :mod:`steerlab.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from steerlab.cli.common import console, out
from steerlab.defaults import DEFAULT_MODEL


def demo(model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
         out_dir: Path = typer.Option(Path("results/demo"), "--out", "-o"),
         strength: float = typer.Option(6.0, "--strength", "-s", help="k: generate at -k, 0, +k."),
         n_prompts: int = typer.Option(10, help="Neutral prompts to continue."),
         samples: int = typer.Option(3, help="Samples per prompt and strength."),
         seed: int = typer.Option(0)) -> None:
    """Extract a sentiment vector, pick a layer, and show sentiment at -k, 0, +k."""
    import torch

    from steerlab.demo import run_demo

    torch.manual_seed(seed)
    with console.status("running the demo (extract → layer sweep → steered generation)"):
        r = run_demo(model, out_dir, strength=strength, n_prompts=n_prompts, samples=samples, seed=seed)
    t = r["timings"]
    console.print(f"[dim]load {t['load_s']:.1f} s · extract {t['extract_s']:.1f} s · layer sweep "
                  f"{t['layer_sweep_s']:.1f} s · generate {t['generate_s']:.1f} s · total {t['total_s']:.1f} s[/dim]")
    spread = Table(title="layer choice: VADER effect of +k minus effect of −k (each layer alone)")
    spread.add_column("layer", justify="right")
    spread.add_column("spread", justify="right")
    for layer, v in r["layer_spread"].items():
        spread.add_row(str(layer), f"{v:+.3f}" + ("  ◀ chosen" if layer == r["layer"] else ""))
    out.print(spread)
    table = Table(title=f"{r['model']}: sentiment vector at layer {r['layer']} "
                        f"({r['n_prompts']} neutral prompts × {r['samples_per_prompt']} samples, top-p 0.9)",
                  show_lines=True)
    for col in ("strength", "mean VADER", "% positive", "% negative", "sample"):
        table.add_column(col, justify="right" if col != "sample" else "left")
    for row in r["table"]:
        p, s = row["samples"][0]
        table.add_row(f"{row['strength']:+g}", f"{row['mean_sentiment']:+.3f}",
                      f"{100 * row['positive_share']:.0f}%", f"{100 * row['negative_share']:.0f}%",
                      f"[bold]{p}[/bold]{s}")
    out.print(table)
    console.print(f"saved: {r['artifact']}, {r['gguf']}, {Path(out_dir) / 'results.json'}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
