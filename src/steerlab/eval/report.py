"""Evaluation reports: JSON (every number, config, seeds, versions), Markdown table, PNG plots."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steerlab.core.atomic import atomic_file, prepare_folder
from steerlab.eval.protocol import ConditionResult, Protocol
from steerlab.eval.tasks import Task


def _f(x: float, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


@dataclass
class EvalReport:
    task: Task
    protocol: Protocol
    model: str
    reference: str
    reference_is_self: bool
    artifact: str | None
    artifact_method: str | None
    options: dict[str, Any]
    results: list[ConditionResult]
    choice: dict[str, Any] | None
    fluency_budget: float
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def row(self, kind: str) -> ConditionResult | None:
        return next((r for r in self.results if r.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {"task": asdict(self.task), "protocol": asdict(self.protocol), "model": self.model,
                "reference": self.reference, "reference_is_self": self.reference_is_self,
                "artifact": self.artifact, "artifact_method": self.artifact_method, "options": self.options,
                "results": [r.to_dict() for r in self.results], "choice": self.choice,
                "fluency_budget": self.fluency_budget, "versions": self.versions, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> EvalReport:
        """A report back from :meth:`to_dict` (its saved JSON), e.g. to store its card later."""
        tuples = ("attribute_ci", "success_ci", "perplexity_ci", "dist", "vs_prompting")
        rows: list[dict[str, Any]] = [{k: tuple(v) if k in tuples and v is not None else v for k, v in r.items()}
                                      for r in doc["results"]]
        results = [ConditionResult(**r) for r in rows]
        return cls(Task(**doc["task"]), Protocol(**doc["protocol"]), doc["model"], doc["reference"],
                   doc["reference_is_self"], doc["artifact"], doc["artifact_method"], doc["options"], results,
                   doc["choice"], doc["fluency_budget"], doc.get("versions", {}), doc.get("seconds", 0.0))

    def card(self) -> dict[str, Any]:
        """The compact summary stored in an artifact's eval card."""
        return {"task": self.task.name, "protocol": asdict(self.protocol), "recommended": self.choice,
                "options": self.options, "reference": self.reference,
                "sweep": [{"strength": r.strength, "options": r.options, **(_brief(r) or {})}
                          for r in self.results if r.kind == "steered"],
                "unsteered": _brief(self.row("unsteered")), "prompting": _brief(self.row("prompting"))}

    def to_markdown(self) -> str:
        t, p = self.task, self.protocol
        ppl_note = "self-perplexity (no reference model installed)" if self.reference_is_self else self.reference
        lines = [
            f"## {t.name}: {t.description}",
            "",
            f"model `{self.model}` · {p.n_prompts} prompts × {p.samples} samples × {p.max_new_tokens} tokens · "
            f"top-p {p.top_p} · T {p.temperature} · seed {p.seed} · scorer `{t.scorer}` · perplexity under "
            f"`{ppl_note}` · 95% bootstrap CIs over prompts · {self.seconds:.0f} s",
            "",
        ]
        tox = t.toxicity_metrics
        seconds = [f"{n} mean" for n in t.extra_scorers] + [f"{n} agreement" for n in t.extra_scorers]
        paired = any(r.vs_prompting is not None for r in self.results)
        head = ["condition", t.success_name] + (["vs prompting (paired)"] if paired else []) + [
            "mean score", "perplexity", "dist-1", "dist-2", "dist-3", "words", "repetition"] + (
            ["avg max tox", "tox prob"] if tox else []) + seconds
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.results:
            cells = [r.name,
                     f"{100 * r.success:.1f} [{100 * r.success_ci[0]:.1f}, {100 * r.success_ci[1]:.1f}]",
                     *([_points(r.vs_prompting)] if paired else []),
                     f"{_f(r.attribute)} [{_f(r.attribute_ci[0])}, {_f(r.attribute_ci[1])}]",
                     f"{_f(r.perplexity, 1)} [{_f(r.perplexity_ci[0], 1)}, {_f(r.perplexity_ci[1], 1)}]",
                     *(_f(d) for d in r.dist), f"{r.mean_words:.1f}", _f(r.repetition)]
            if tox:
                cells += [_f(r.extra.get("avg_max_toxicity", float("nan"))),
                          _f(r.extra.get("toxicity_probability", float("nan")))]
            cells += [_f(r.extra.get(f"{n}_mean", float("nan"))) for n in t.extra_scorers]
            cells += [_f(r.extra.get(f"{n}_agreement", float("nan"))) for n in t.extra_scorers]
            lines.append("| " + " | ".join(cells) + " |")
        if self.choice:
            c = self.choice
            lines += ["", f"Chosen strength within +{100 * self.fluency_budget:.0f}% perplexity of unsteered: "
                          f"**{c['strength']}**" + (f" ({c.get('reason')})" if c.get("reason") else "")]
        return "\n".join(lines) + "\n"

    @staticmethod
    def files(task: str) -> list[str]:
        """The files a report of ``task`` writes into its folder (nothing else there is touched)."""
        return [f"{task}.json", f"{task}.md", f"{task}_strength.png", f"{task}_pareto.png"]

    def save(self, out_dir: str | Path, *, overwrite: bool = False) -> Path:
        """Write the report's files into ``out_dir``; an earlier report of the same task there is
        replaced only with ``overwrite=True``."""
        stem = self.task.name
        out = prepare_folder(out_dir, self.files(stem), overwrite=overwrite, what="evaluation report")
        with atomic_file(out / f"{stem}.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        with atomic_file(out / f"{stem}.md", overwrite=True) as tmp:
            tmp.write_text(self.to_markdown())
        if any(r.kind == "steered" for r in self.results):
            from steerlab.eval.plots import plot_report

            plot_report(self, out)
        return out


def _points(diff: tuple[float, float, float] | None) -> str:
    """A paired success difference in percentage points with its interval, e.g. "+7.4 [+2.5, +12.0]"."""
    if diff is None:
        return "—"
    d, lo, hi = (100 * x for x in diff)
    return f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def _brief(r: ConditionResult | None) -> dict[str, Any] | None:
    """A condition's numbers for the card: success with its 95% interval, attribute, perplexity,
    distinct-3, and for a steered row the paired difference from prompting where measured."""
    if r is None:
        return None
    brief = {"success": r.success, "success_ci": list(r.success_ci), "attribute": r.attribute,
             "perplexity": r.perplexity, "dist3": r.dist[2]}
    if r.vs_prompting is not None:
        brief["vs_prompting"] = list(r.vs_prompting)
    return brief
