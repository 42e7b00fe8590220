"""Both sentiment reports (towards positive and towards negative) from one evaluation pass, for
the benchmark scripts that sweep signed strengths in a single run."""

from __future__ import annotations

from typing import Any

from steerlab._version import __version__
from steerlab.eval.harness import choose_strength
from steerlab.eval.protocol import Protocol, summarise
from steerlab.eval.report import EvalReport
from steerlab.eval.tasks import TASKS
from steerlab.models.loading import LoadedModel


def reports_from_samples(samples: Any, protocol: Protocol, model: str, reference: LoadedModel,
                         reference_is_self: bool, artifact: str, method: str, seconds: float = 0.0,
                         fluency_budget: float = 0.10) -> list[EvalReport]:
    """Both sentiment reports from one pass whose conditions include unsteered, ``prompting
    (positive)``, ``prompting (negative)`` and signed steered strengths (each goes to its side)."""
    reports = []
    for task_name, sign, prompting in (("sentiment-positive", 1, "prompting (positive)"),
                                       ("sentiment-negative", -1, "prompting (negative)")):
        task = TASKS.get(task_name)
        names = ["unsteered", prompting] + [c.name for c in samples.conditions
                                            if c.kind == "steered" and c.strength and c.strength * sign > 0]
        results = summarise(task, samples, protocol, only=names)
        reports.append(EvalReport(task=task, protocol=protocol, model=model, reference=reference.name,
                                  reference_is_self=reference_is_self, artifact=artifact, artifact_method=method,
                                  options={}, results=results, choice=choose_strength(results, fluency_budget),
                                  fluency_budget=fluency_budget, versions={"steerlab": __version__},
                                  seconds=seconds))
    return reports
