"""Reading eval cards: the one-line summary ``steerlab artifacts`` prints, and the setting to
start from, both derived from the ``eval:TASK`` entries the harness stores in an artifact
(:meth:`~steerlab.eval.report.EvalReport.card`), so a catalogue never disagrees with its own
measurements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Recommendation:
    """Where to start for one task: the strength chosen within the fluency budget, or (when no
    strength fits it) the most successful one, flagged as over budget."""

    task: str
    strength: float
    options: dict[str, Any]
    success: float
    perplexity: float
    within_budget: bool
    gain: float  # success minus the unsteered model's

    def describe(self) -> str:
        flag = "" if self.within_budget else ", over the fluency budget"
        return (f"{self.task}: x{self.strength:g} ({100 * self.success:.0f}%, "
                f"{100 * self.gain:+.0f} pts vs unsteered{flag})")


def task_cards(eval_card: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The per-task entries of an artifact's eval card, by task name."""
    return {k.split(":", 1)[1]: v for k, v in eval_card.items()
            if k.startswith("eval:") and isinstance(v, Mapping) and v.get("sweep")}


def recommendations(eval_card: Mapping[str, Any]) -> list[Recommendation]:
    """One :class:`Recommendation` per measured task, in the card's order."""
    out = []
    for task, card in task_cards(eval_card).items():
        rec = card.get("recommended") or {}
        within = rec.get("strength") is not None
        strength = rec.get("strength") if within else rec.get("best_unconstrained")
        row = next((r for r in card["sweep"] if strength is not None and r["strength"] == strength), None)
        if row is None:
            row = max(card["sweep"], key=lambda r: r["success"])
            within = False
        out.append(Recommendation(task, float(row["strength"]), dict(row.get("options") or card.get("options") or {}),
                                  float(row["success"]), float(row["perplexity"]), within,
                                  float(row["success"]) - float(card["unsteered"]["success"])))
    return out


def primary(eval_card: Mapping[str, Any]) -> Recommendation | None:
    """The one setting to start from: the within-budget setting that gains most over unsteered,
    else the first task's most successful setting; None for a card with no task entries."""
    recs = recommendations(eval_card)
    winners = [r for r in recs if r.within_budget and r.gain > 0]
    if winners:
        return max(winners, key=lambda r: r.gain)
    return recs[0] if recs else None


def summary(eval_card: Mapping[str, Any]) -> str | None:
    """One line per task (best strength vs unsteered and prompting, with perplexity, and the best
    within the fluency budget), joined; the card's own ``summary`` for cards without task entries
    (SteerLM's controllability, an artifact no scorer can measure); None when there is nothing."""
    cards = task_cards(eval_card)
    if not cards:
        text = eval_card.get("summary")
        return str(text) if text else None
    return " | ".join(_task_summary(c) for _, c in sorted(cards.items()))


def _task_summary(card: Mapping[str, Any]) -> str:
    best = max(card["sweep"], key=lambda r: r["success"])
    un, pr = card["unsteered"], card["prompting"]
    rec = card.get("recommended") or {}
    budget = 100 * float(rec.get("budget", 0.1))
    chosen = next((r for r in card["sweep"] if r["strength"] == rec.get("strength")), None)
    within = (f"best within +{budget:.0f}% ppl: x{chosen['strength']:g} = {100 * chosen['success']:.0f}%"
              if chosen is not None else f"none within +{budget:.0f}% ppl")
    return (f"{card['task']}: {100 * best['success']:.0f}% at x{best['strength']:g} (ppl {best['perplexity']:.0f}) vs "
            f"unsteered {100 * un['success']:.0f}% (ppl {un['perplexity']:.0f}), prompting "
            f"{100 * pr['success']:.0f}% (ppl {pr['perplexity']:.0f}); {within}")
