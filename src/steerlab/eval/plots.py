"""Plots for a report: attribute success vs strength, and success vs perplexity (Pareto front)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from steerlab.errors import MissingDependencyError

if TYPE_CHECKING:
    from steerlab.eval.report import EvalReport


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (perplexity, success) not dominated by one with lower-or-equal perplexity and higher success."""
    front: list[tuple[float, float]] = []
    for ppl, succ in sorted(points):
        if not front or succ > front[-1][1]:
            front.append((ppl, succ))
    return front


def plot_report(report: EvalReport, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("plots need: pip install matplotlib") from None
    steered = sorted((r for r in report.results if r.kind == "steered"), key=lambda r: r.strength or 0.0)
    base, prompting = report.row("unsteered"), report.row("prompting")
    name = report.task.success_name
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    variants: dict[str, list] = {}
    for r in steered:
        variants.setdefault(json.dumps(r.options, sort_keys=True), []).append(r)
    for key, rows in variants.items():
        xs = [r.strength for r in rows]
        ys = [100 * r.success for r in rows]
        err = [[100 * (r.success - r.success_ci[0]) for r in rows],
               [100 * (r.success_ci[1] - r.success) for r in rows]]
        label = (report.artifact or "steered") + ("" if len(variants) == 1 else f" {key}")
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
    for row, style, label in ((base, "--", "unsteered"), (prompting, ":", "prompting baseline")):
        if row is not None:
            ax.axhline(100 * row.success, linestyle=style, color="grey" if label == "unsteered" else "tab:red",
                       label=label)
    ax.set_xlabel("strength")
    ax.set_ylabel(name)
    ax.set_title(f"{report.task.name} on {report.model}")
    ax.legend()
    fig.tight_layout()
    p = out / f"{report.task.name}_strength.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(6, 4))
    pts = [(r.perplexity, 100 * r.success) for r in steered if not math.isnan(r.perplexity)]
    ax.scatter([a for a, _ in pts], [b for _, b in pts], label="steered")
    for r in steered:
        if not math.isnan(r.perplexity):
            ax.annotate(f"{r.strength:g}", (r.perplexity, 100 * r.success), textcoords="offset points", xytext=(4, 4))
    front = pareto_front(pts)
    ax.plot([a for a, _ in front], [b for _, b in front], color="tab:blue", alpha=0.5, label="Pareto front")
    for row, marker, label in ((base, "s", "unsteered"), (prompting, "*", "prompting baseline")):
        if row is not None and not math.isnan(row.perplexity):
            ax.scatter([row.perplexity], [100 * row.success], marker=marker, s=120, label=label)
    if base is not None:
        ax.axvline(base.perplexity * (1 + report.fluency_budget), linestyle="--", color="grey",
                   label=f"+{100 * report.fluency_budget:.0f}% perplexity budget")
    xs_all = [a for a, _ in pts] + [r.perplexity for r in (base, prompting) if r is not None]
    if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) > 5:
        ax.set_xscale("log")
    ax.set_xlabel(f"perplexity ({report.reference})")
    ax.set_ylabel(name)
    ax.set_title("attribute vs fluency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out / f"{report.task.name}_pareto.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)
    return paths
