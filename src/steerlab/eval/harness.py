"""``evaluate``: one call that measures any steering the same way.

Rows of every report: the unsteered model, the prompting baseline (the task's instruction prepended
to each prompt) and the artifact at one or several strengths. With several strengths it also
chooses automatically the strength that maximises attribute success within a fluency budget
(perplexity ≤ (1 + budget) × unsteered) and, given an artifact directory, stores the choice and
the sweep in the artifact's eval card.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from steerlab._version import __version__
from steerlab.core.artifact import Artifact, update_eval_card
from steerlab.core.atomic import check_folder
from steerlab.core.steerer import Steer, get_steerer
from steerlab.errors import SteerlabError
from steerlab.eval.protocol import (
    QUICK,
    Condition,
    ConditionResult,
    Protocol,
    TextEngine,
    prompts_for,
    run_conditions,
)
from steerlab.eval.report import EvalReport
from steerlab.eval.tasks import TASKS, Task
from steerlab.models.loading import LoadedModel, load_model
from steerlab.models.packaged import PACKAGED

DEFAULT_REFERENCE = "qwen2.5-0.5b"


def load_reference(lm: LoadedModel, reference: str | LoadedModel | None = "auto") -> LoadedModel:
    """The fluency reference model: the bigger packaged Qwen when installed, else the model itself
    (then perplexities are "self" perplexities and the report says so)."""
    if isinstance(reference, LoadedModel):
        return reference
    if reference in (None, "auto"):
        if PACKAGED[DEFAULT_REFERENCE].locate_parts() is not None and lm.name != DEFAULT_REFERENCE:
            return load_model(DEFAULT_REFERENCE)
        return lm
    if reference == "self":
        return lm
    return load_model(reference)


def choose_strength(results: Sequence[ConditionResult], budget: float) -> dict[str, Any]:
    """Highest success among steered rows whose perplexity is within ``budget`` of unsteered."""
    base = next(r for r in results if r.kind == "unsteered")
    limit = base.perplexity * (1.0 + budget)
    steered = [r for r in results if r.kind == "steered"]
    ok = [r for r in steered if not math.isnan(r.perplexity) and r.perplexity <= limit]
    best_any = max(steered, key=lambda r: r.success) if steered else None
    if not ok:
        return {"strength": None, "budget": budget, "perplexity_limit": limit,
                "reason": "no steered strength stays within the fluency budget",
                "best_unconstrained": best_any.strength if best_any else None}
    best = max(ok, key=lambda r: (r.success, -abs(r.strength or 0.0)))
    return {"strength": best.strength, "options": best.options, "success": best.success,
            "perplexity": best.perplexity, "budget": budget, "perplexity_limit": limit,
            "best_unconstrained": best_any.strength if best_any else None}


def evaluate(
    lm: LoadedModel,
    task: str | Task,
    artifact: Artifact | None = None,
    *,
    strengths: Sequence[float] | None = None,
    options: Mapping[str, Any] | None = None,
    variants: Sequence[Mapping[str, Any]] | None = None,
    protocol: Protocol = QUICK,
    reference: str | LoadedModel | None = "auto",
    fluency_budget: float = 0.10,
    artifact_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    engine: TextEngine | None = None,
) -> EvalReport:
    """Evaluate ``artifact`` on ``task`` against the unsteered model and the prompting baseline.

    ``strengths``: default = the method's suggested magnitudes, signed towards the task's goal.
    ``variants``: option sets to sweep besides strength (e.g. ``[{"layers": [7]}, {"layers": [9]}]``
    for a layer sweep of a vector); each is merged over ``options``.
    ``engine``: generate through another engine (vLLM: :class:`steerlab.vllm.engine.VllmEngine`)
    instead of steerlab's own on ``lm``; ``lm`` still names the model and scoring stays here.
    """
    t0 = time.perf_counter()
    task_obj = TASKS.get(task) if isinstance(task, str) else task
    if out_dir is not None:  # refuse a bad output folder before minutes of generation
        check_folder(out_dir, EvalReport.files(task_obj.name), overwrite=overwrite, what="evaluation report")
    ref = load_reference(lm, reference)
    prompts = prompts_for(task_obj, protocol)
    _check_held_out(artifact, prompts)
    conditions = [Condition("unsteered", "unsteered"),
                  Condition("prompting", "prompting", prefix=task_obj.instruction + "\n\n")]
    if artifact is not None:
        mags = strengths if strengths is not None else [
            task_obj.sign * s for s in get_steerer(artifact.method).suggested_strengths]
        for variant in variants or [{}]:
            opts = {**(options or {}), **variant}
            label = "".join(f" {k}={_short(v)}" for k, v in variant.items())
            for s in mags:
                conditions.append(Condition(f"{artifact.name}{label} ×{s:g}", "steered",
                                            (Steer(artifact, float(s), opts),), strength=float(s), options=opts))
    results = run_conditions(lm, task_obj, conditions, protocol, ref, prompts, engine)
    choice = choose_strength(results, fluency_budget) if artifact is not None else None
    report = EvalReport(
        task=task_obj, protocol=protocol, model=lm.name, reference=ref.name,
        reference_is_self=ref is lm, artifact=artifact.name if artifact else None,
        artifact_method=artifact.method if artifact else None, options=dict(options or {}),
        results=results, choice=choice, fluency_budget=fluency_budget,
        versions={"steerlab": __version__, "python": platform.python_version(), **_lib_versions()},
        seconds=time.perf_counter() - t0,
    )
    if artifact_path is not None and choice is not None:
        update_eval_card(artifact_path, {f"eval:{task_obj.name}": report.card()})
    if out_dir is not None:
        report.save(out_dir, overwrite=overwrite)
    return report


def _check_held_out(artifact: Artifact | None, prompts: Sequence[str]) -> None:
    """Prompts used to build an artifact must never score it."""
    if artifact is None:
        return
    from steerlab.data.pairs import text_hashes

    used = set(artifact.meta.get("provenance", {}).get("text_hashes", []))
    clash = used & set(text_hashes(prompts))
    if clash:
        raise SteerlabError(f"{len(clash)} evaluation prompts were used to build {artifact.name!r}; "
                            "evaluate on held-out prompts")


def _short(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _lib_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "sentence-transformers", "alt-profanity-check", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def with_protocol(protocol: Protocol, **changes: Any) -> Protocol:
    """A copy of ``protocol`` with fields changed (CLI overrides)."""
    return replace(protocol, **{k: v for k, v in changes.items() if v is not None})
