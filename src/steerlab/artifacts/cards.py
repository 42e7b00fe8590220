"""Reading eval cards: the one-line summary ``steerlab artifacts`` prints, and the setting to
start from, both derived from the ``eval:TASK`` entries the harness stores in an artifact
(:meth:`~steerlab.eval.report.EvalReport.card`), so a catalogue never disagrees with its own
measurements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FLUENT_RATIO = 2.0
"""Past this multiple of the unsteered perplexity a setting counts as breaking the text, not as
merely over the budget: when no setting fits the budget, the start is the most successful one
below it, and when none is below it either, the gentlest one that gains, flagged as not fluent."""


@dataclass(frozen=True)
class Recommendation:
    """Where to start for one task: the strength chosen within the fluency budget, or (when no
    strength fits it) the most successful one that keeps perplexity under :data:`FLUENT_RATIO` x
    the unsteered model's, flagged as over budget (or as not fluent when no measured one does)."""

    task: str
    strength: float
    options: dict[str, Any]
    success: float
    perplexity: float
    within_budget: bool
    gain: float  # success minus the unsteered model's
    perplexity_ratio: float = 1.0  # perplexity over the unsteered model's

    @property
    def fluent(self) -> bool:
        return self.perplexity_ratio <= FLUENT_RATIO

    def describe(self) -> str:
        flag = "" if self.within_budget else ", over the fluency budget"
        if not self.fluent:
            flag = f", perplexity x{self.perplexity_ratio:.1f} the unsteered: no fluent setting measured"
        return (f"{self.task}: {setting({'strength': self.strength, 'options': self.options}, {})} "
                f"({100 * self.success:.0f}%, "
                f"{100 * self.gain:+.0f} pts vs unsteered{flag})")


def task_cards(eval_card: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The per-task entries of an artifact's eval card, by task name."""
    return {k.split(":", 1)[1]: v for k, v in eval_card.items()
            if k.startswith("eval:") and isinstance(v, Mapping) and v.get("sweep")}


def _chosen(card: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The sweep row of the strength the harness chose within the fluency budget; None when no
    strength fitted it."""
    strength = (card.get("recommended") or {}).get("strength")
    if strength is None:
        return None
    return next((r for r in card["sweep"] if r["strength"] == strength), None)


def recommendations(eval_card: Mapping[str, Any]) -> list[Recommendation]:
    """One :class:`Recommendation` per measured task, in the card's order."""
    out = []
    for task, card in task_cards(eval_card).items():
        un_ok, un_ppl = float(card["unsteered"]["success"]), float(card["unsteered"]["perplexity"])
        row = _chosen(card)
        within = row is not None
        if row is None:
            row = _fallback(card["sweep"], un_ok, un_ppl)
        ppl = float(row["perplexity"])
        out.append(Recommendation(task, float(row["strength"]), dict(row.get("options") or card.get("options") or {}),
                                  float(row["success"]), ppl, within, float(row["success"]) - un_ok,
                                  ppl / un_ppl if un_ppl > 0 else float("inf")))
    return out


def _fallback(sweep: Sequence[Mapping[str, Any]], un_ok: float, un_ppl: float) -> Mapping[str, Any]:
    """With nothing within budget: the most successful row under ``FLUENT_RATIO`` x the unsteered
    perplexity that gains; else the gentlest (lowest-perplexity) row that gains; else the most
    successful row."""
    gaining = [r for r in sweep if r["success"] > un_ok]
    fluent = [r for r in gaining if r["perplexity"] <= FLUENT_RATIO * un_ppl]
    if fluent:
        return max(fluent, key=lambda r: r["success"])
    if gaining:
        return min(gaining, key=lambda r: r["perplexity"])
    return max(sweep, key=lambda r: r["success"])


def primary(eval_card: Mapping[str, Any]) -> Recommendation | None:
    """The one setting to start from: the within-budget setting that gains most over unsteered,
    else the fluent (over-budget) one that gains most, else the first task's fallback; None for a
    card with no task entries."""
    recs = recommendations(eval_card)
    winners = [r for r in recs if r.within_budget and r.gain > 0]
    if winners:
        return max(winners, key=lambda r: r.gain)
    fluent = [r for r in recs if r.fluent and r.gain > 0]
    if fluent:
        return max(fluent, key=lambda r: r.gain)
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


def lines(eval_card: Mapping[str, Any]) -> list[str]:
    """What ``steerlab inspect`` prints of a card: per measured task its summary, whether the
    within-budget setting beats prompting (as the comparison page decides it) and the protocol it
    was measured on; the card's own ``summary`` for cards without task entries."""
    cards = task_cards(eval_card)
    if not cards:
        text = summary(eval_card)
        return [text] if text else []
    out = []
    for _, card in sorted(cards.items()):
        p = card.get("protocol") or {}
        chosen = _chosen(card)
        verdict = f"; beats prompting: {_verdict(chosen, card['prompting'])}" if chosen is not None else ""
        sample = f"{p.get('n_prompts', '?')} prompts x {p.get('samples', '?')} x {p.get('max_new_tokens', '?')} tokens"
        out.append(f"{_task_summary(card)}{verdict} ({sample})")
    return out


def _task_summary(card: Mapping[str, Any]) -> str:
    best = max(card["sweep"], key=lambda r: r["success"])
    un, pr = card["unsteered"], card["prompting"]
    rec = card.get("recommended") or {}
    budget = 100 * float(rec.get("budget", 0.1))
    chosen = _chosen(card)
    within = (f"best within +{budget:.0f}% ppl: {setting(chosen, card)} = {100 * chosen['success']:.0f}%"
              if chosen is not None else f"none within +{budget:.0f}% ppl")
    return (f"{card['task']}: {100 * best['success']:.0f}% at {setting(best, card)} (ppl {best['perplexity']:.0f}) vs "
            f"unsteered {100 * un['success']:.0f}% (ppl {un['perplexity']:.0f}), prompting "
            f"{100 * pr['success']:.0f}% (ppl {pr['perplexity']:.0f}); {within}")


def setting(row: Mapping[str, Any], card: Mapping[str, Any]) -> str:
    """A sweep row's setting in a few characters: ``x4 L8+10+12``, ``x1 L15 clamp to -14``,
    ``x3 L8 generated``. The strength alone misleads where the options carry the direction (a
    clamp's target) or where the steered layers differ from the artifact's."""
    opts = dict(card.get("options") or {}) | dict(row.get("options") or {})
    out = f"x{row['strength']:g}"
    if opts.get("layers"):
        out += " L" + "+".join(str(la) for la in opts["layers"])
    operator = opts.get("operator", "add")
    if operator == "clamp":
        target = opts.get("clamp_value")
        out += " clamp" + (f" to {target:g}" if target is not None else " to the + mean")
    elif operator != "add":
        out += f" {operator}"
    positions = opts.get("positions", "all")
    if positions != "all":
        out += f" {positions}" if isinstance(positions, str) else f" from {positions}"
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _ci(row: Mapping[str, Any]) -> str:
    ci = row.get("success_ci")
    return f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}]" if ci else ""


def _verdict(row: Mapping[str, Any] | None, prompting: Mapping[str, Any]) -> str:
    """Whether a within-budget row beats prompting: by the paired interval of the difference
    (above zero, where the card stores it), by interval (its low end above prompting's high end),
    by point estimate only (intervals overlap or were not stored), or not."""
    if row is None:
        return "no setting within budget"
    if row["success"] <= prompting["success"]:
        return "no"
    paired = row.get("vs_prompting")
    if paired:
        lo, hi = (100 * x for x in paired[1:])
        sep = "yes (paired difference" if lo > 0 else "yes, point estimate (paired difference"
        return f"{sep} [{lo:+.0f}, {hi:+.0f}] points)"
    ci, pci = row.get("success_ci"), prompting.get("success_ci")
    if ci and pci:
        return "yes (intervals separate)" if ci[0] > pci[1] else "yes, point estimate (intervals overlap)"
    return "yes, point estimate (card has no intervals)"


def comparison(entries: Sequence[tuple[str, str, str, Mapping[str, Any]]]) -> str:
    """The comparison page (markdown): one row per (task, model, artifact) from each entry
    ``(name, method, model, eval_card)``: the best setting within the card's fluency budget and
    the best overall, each with success, its interval where stored, perplexity and distinct-3,
    against the unsteered model and the prompting baseline of the same run."""
    rows: list[tuple[str, str, str]] = []
    lines = ["| task | model | method (artifact) | within budget: setting, success [95% CI], ppl, dist-3 | "
             "best overall: setting, success, ppl | unsteered | prompting | beats prompting within budget? |",
             "|---|---|---|---|---|---|---|---|"]
    for name, method, model, eval_card in entries:
        for task, card in task_cards(eval_card).items():
            chosen = _chosen(card)
            best = max(card["sweep"], key=lambda r: r["success"])
            un, pr = card["unsteered"], card["prompting"]
            within = "—"
            if chosen is not None:
                dist3 = f"{chosen['dist3']:.2f}" if "dist3" in chosen else "—"
                within = (f"{setting(chosen, card)}: {_pct(chosen['success'])}{_ci(chosen)}, "
                          f"{chosen['perplexity']:.0f}, {dist3}")
            rows.append((task, model, (f"| {task} | {model} | {method} (`{name}`) | {within} | "
                                       f"{setting(best, card)}: {_pct(best['success'])}, {best['perplexity']:.0f} | "
                                       f"{_pct(un['success'])}{_ci(un)}, {un['perplexity']:.0f} | "
                                       f"{_pct(pr['success'])}{_ci(pr)}, {pr['perplexity']:.0f} | "
                                       f"{_verdict(chosen, pr)} |")))
    lines += [line for _, _, line in sorted(rows)]
    return "\n".join(lines) + "\n"


PAGE_HEAD = """# Comparison

Every shipped steer on every task it was measured on, with the unsteered model and the prompting
baseline of the same run (same prompts, seeds and samples). Success is the share of samples with
the attribute (95% bootstrap interval over prompts where the card stores it); perplexity is under
the reference model; the fluency budget is +10% perplexity over unsteered. "Within budget" is the
most successful setting that stays inside it; "best overall" ignores fluency. A setting is the
strength with the layers steered (`L8+10+12`), any operator other than adding the direction
(`clamp to -14`: each token's projection on the direction set to -14) and any position rule.
"Beats prompting" is decided by the paired interval of the difference (steered − prompting on the
same prompts) where the card stores one, else by whether the two intervals separate. Below the
table: what each trained steer's training cost and whether its loss had stopped falling.

Generated from the artifacts' eval cards by `steerlab compare --out docs/comparison.md`; a test
checks this page equals what the command writes. The evaluation protocol is on the
[Evaluation](evaluation.md) page.

"""


def comparison_page(entries: Sequence[tuple[str, str, str, Mapping[str, Any]]]) -> str:
    """The whole comparison page: :data:`PAGE_HEAD` and :func:`comparison`'s table."""
    return PAGE_HEAD + comparison(entries)
