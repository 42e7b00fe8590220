"""Controllability of attribute knobs (evaluation harness): request each level, measure the output.

For every attribute of the schema and every level low..high (other attributes at their defaults),
each system answers the same held-out prompts; the value model scores every response, and an
independent scorer does too where one exists (sentiment: the shipped probe; toxicity:
alt-profanity-check; verbosity: the word count). Reported per attribute and system: Spearman ρ
between requested and measured values over all responses, the mean measured value per level, and
whether those means rise monotonically.

Systems are given as ``name -> (level request -> (prompt rewrite, row steering))`` so SteerLM
adapters from different rounds and the prompting baseline ("respond with humor level 4 of 4")
run side by side in one batched generation, without the evaluation knowing any method.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steerlab.core.atomic import atomic_file, prepare_folder
from steerlab.data.pairs import read_text
from steerlab.errors import DataError
from steerlab.methods.steerlm.schema import AttributeSchema
from steerlab.methods.steerlm.value_model import ValueModel
from steerlab.models.loading import LoadedModel

System = Callable[[Mapping[str, int]], tuple[Callable[[str], str], Any]]
"""Given the requested attribute values, how to rewrite a prompt and what steering the row gets."""

INDEPENDENT = {"sentiment": "sentiment", "toxicity": "toxicity", "verbosity": "words"}


def steerlm_system(adapter: Any) -> System:
    from steerlab.core.steerer import Steer

    return lambda values: ((lambda p: p), Steer(adapter, 1.0, {"attributes": dict(values)}))


def prompting_system(schema: AttributeSchema, attribute_only: bool = True) -> System:
    """The base model told the target in words, e.g. "Respond with humor level 4 of 4 (…)"."""
    def system(values: Mapping[str, int]) -> tuple[Callable[[str], str], Any]:
        names = [n for n in values if n in schema.names]
        parts = [f"{n} level {values[n]} of {schema[n].high} ({schema[n].description})" for n in names]
        instruction = "Respond with " + "; ".join(parts) + "."
        return (lambda p: f"{p}\n\n{instruction}"), None
    return system


@dataclass
class ControlResult:
    system: str
    attribute: str
    spearman_value_model: float
    spearman_independent: float | None
    level_means: list[float]  # value-model mean per requested level
    independent_means: list[float] | None
    monotone: bool
    spearman_ci: list[float] | None = None  # 95% bootstrap interval of the value-model ρ, resampling prompts

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def measure_controllability(
    lm: LoadedModel,
    systems: Mapping[str, System],
    value_model: ValueModel,
    prompts: Sequence[str],
    *,
    independent: bool = True,
    **sweep: Any,
) -> tuple[list[ControlResult], dict[str, Any]]:
    """One batched generation over systems × attributes × levels × prompts × samples; see module docs.

    ``sweep`` takes the keyword arguments of :func:`generate_sweep` (``attributes``, ``samples``,
    ``max_new_tokens``, ``temperature``, ``top_p``, ``seed``, ``chat``, ``progress``).
    ``info["outputs"]`` keeps every generated row, so :func:`score_outputs` can re-score a sweep
    later (another value model, or the independent scorers on a machine that has them) without
    generating again. ``independent=False`` skips the independent scorers.
    """
    rows = generate_sweep(lm, systems, value_model.schema, prompts, **sweep)
    results = score_outputs(rows, value_model, independent=independent)
    settings = {k: p.default for k, p in inspect.signature(generate_sweep).parameters.items()
                if p.kind is p.KEYWORD_ONLY and k != "progress"}
    settings.update((k, v) for k, v in sweep.items() if k != "progress")
    examples = {f"{r['system']} | {r['attribute']}={r['level']}": (r["prompt"], r["output"]) for r in rows}
    info = {"rows": len(rows), "prompts": len(prompts), **settings, "examples": examples, "outputs": rows}
    return results, info


def generate_sweep(
    lm: LoadedModel,
    systems: Mapping[str, System],
    schema: AttributeSchema,
    prompts: Sequence[str],
    *,
    attributes: Sequence[str] | None = None,
    samples: int = 1,
    max_new_tokens: int = 48,
    temperature: float = 0.7,
    top_p: float = 0.95,
    seed: int = 0,
    chat: bool | None = None,
    guidance: float = 1.0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Rows ``{system, attribute, level, prompt, output}``: every system asked every level of every attribute.

    ``guidance`` ≠ 1 decodes attribute-steered rows with classifier-free guidance against the
    same adapter at the schema's defaults (``guidance_reference={}``), so each knob is pushed away
    from its default by the requested level; rows without attribute knobs (the prompting baseline)
    have identical branches and decode as without guidance.
    """
    from steerlab.generation.generate import generate

    if chat is None:
        chat = bool(getattr(lm.tokenizer, "chat_template", None))
    attrs = list(attributes or schema.names)
    texts, steering, keys = [], [], []
    for sname, system in systems.items():
        for a in attrs:
            for level in range(schema[a].low, schema[a].high + 1):
                rewrite, steer = system({a: level})
                for p in prompts:
                    for _ in range(samples):
                        texts.append(rewrite(p))
                        steering.append(steer)
                        keys.append((sname, a, level, p))
    guide: dict[str, Any] = {"guidance": guidance, "guidance_reference": {}} if guidance != 1.0 else {}
    outs = generate(lm, texts, steering=steering, max_new_tokens=max_new_tokens, temperature=temperature,
                    top_p=top_p, seed=seed, chat=chat, progress=progress, **guide)
    return [{"system": k[0], "attribute": k[1], "level": k[2], "prompt": k[3], "output": o.strip()}
            for k, o in zip(keys, outs)]


def score_outputs(rows: Sequence[Mapping[str, Any]], value_model: ValueModel, *,
                  independent: bool = True, n_boot: int = 1000, seed: int = 0) -> list[ControlResult]:
    """Per system and attribute: Spearman ρ, mean measured value per level, monotonicity (see module docs).

    The value-model ρ gets a 95% percentile interval from ``n_boot`` resamples of the *prompts*
    (all levels and samples of a drawn prompt move together), since responses to one prompt are
    not independent; an interval above 0 is the evidence that a knob works.
    """
    from scipy.stats import spearmanr

    from steerlab.scoring.scorers import get_scorer

    schema = value_model.schema
    unknown = sorted({str(r["attribute"]) for r in rows} - set(schema.names))
    if unknown:
        raise DataError(f"the sweep asks for {', '.join(unknown)}, which the value model does not score "
                        f"(it scores {', '.join(schema.names)})")
    outs = [str(r["output"]) for r in rows]
    measured = value_model.score([str(r["prompt"]) for r in rows], outs)
    systems = list(dict.fromkeys(str(r["system"]) for r in rows))
    attrs = list(dict.fromkeys(str(r["attribute"]) for r in rows))
    scores: dict[str, list[float]] = {}
    for a in attrs if independent else []:
        kind = INDEPENDENT.get(a)
        if kind == "words":
            scores[a] = [float(len(o.split())) for o in outs]
        elif kind:
            scores[a] = [float(x) for x in get_scorer(kind)(outs)]
    results = []
    for sname in systems:
        for a in attrs:
            idx = [i for i, r in enumerate(rows) if r["system"] == sname and r["attribute"] == a]
            if not idx:
                continue
            req = np.array([rows[i]["level"] for i in idx], dtype=float)
            got = np.array([measured[i][a] for i in idx])
            levels = list(range(schema[a].low, schema[a].high + 1))
            means = _level_means(got, req, levels)
            ind = scores.get(a)
            ind_vals = np.array([ind[i] for i in idx]) if ind else None
            results.append(ControlResult(
                sname, a, _rho(spearmanr, req, got),
                _rho(spearmanr, req, ind_vals) if ind_vals is not None else None,
                means, _level_means(ind_vals, req, levels) if ind_vals is not None else None,
                all(x <= y for x, y in zip(means, means[1:])),
                _rho_ci(spearmanr, req, got, [str(rows[i]["prompt"]) for i in idx], n_boot, seed)))
    return results


def _level_means(values: np.ndarray, req: np.ndarray, levels: Sequence[int]) -> list[float]:
    """Mean of ``values`` per requested level (NaN for a level nobody asked for)."""
    return [float(values[req == lv].mean()) if (req == lv).any() else float("nan") for lv in levels]


def _rho_ci(spearmanr: Any, req: np.ndarray, got: np.ndarray, prompts: Sequence[str], n_boot: int,
            seed: int) -> list[float] | None:
    """95% percentile interval of ρ over bootstrap resamples of the prompts; None without ≥ 2 prompts."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p, []).append(i)
    if n_boot < 1 or len(groups) < 2:
        return None
    members = [np.array(g) for g in groups.values()]
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        pick = np.concatenate([members[j] for j in rng.integers(0, len(members), len(members))])
        rho = _rho(spearmanr, req[pick], got[pick])
        if not np.isnan(rho):
            stats.append(rho)
    if not stats:
        return None
    return [float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))]


def rescore(path: str | Path, value_model: ValueModel, *, attributes: Sequence[str] | None = None,
            independent: bool = True) -> tuple[list[ControlResult], dict[str, Any]]:
    """Score a saved sweep (``controllability.json``) again — another value model, or the
    independent scorers on another machine — without generating: (results, the sweep's settings)."""
    rows = load_outputs(path)
    if attributes:
        rows = [r for r in rows if r["attribute"] in attributes]
    results = score_outputs(rows, value_model, independent=independent)
    doc = json.loads(read_text(path, "sweep file"))
    return results, {k: v for k, v in doc.items() if k not in ("results",)}


def held_out_prompts(n_prompts: int, per_topic: int, seed: int) -> list[str]:
    """``n_prompts`` held-out chatterbot lines drawn (``seed``) from a pool of ``per_topic`` per topic."""
    import random

    from steerlab.methods.steerlm.annotate import chat_prompts

    if n_prompts < 1 or per_topic < 1:
        raise DataError("n_prompts and per_topic must be >= 1")
    pool = chat_prompts("eval", max_per_topic=per_topic, seed=seed)  # held-out lines, spread over topics
    return random.Random(seed).sample(pool, min(n_prompts, len(pool)))


def load_outputs(path: str | Path) -> list[dict[str, Any]]:
    """The rows saved by :func:`save_results` (``controllability.json``'s ``outputs``)."""
    try:
        rows = json.loads(read_text(path, "sweep file"))["outputs"]
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: no saved sweep outputs ({e})") from None
    need = {"system", "attribute", "level", "prompt", "output"}
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and need <= set(r) for r in rows):
        raise DataError(f"{path}: sweep rows need the keys {sorted(need)}")
    return list(rows)


def _rho(spearmanr: Any, x: np.ndarray, y: np.ndarray) -> float:
    if len(set(y.tolist())) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def to_markdown(results: Sequence[ControlResult]) -> str:
    """One row per attribute and system: ρ, mean measured value per requested level, monotone or not."""
    lines = ["| attribute | system | ρ (value model) [95% CI] | ρ (independent) | value-model mean per level 0→4 "
             "| monotone | independent mean per level |", "|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r.attribute, r.system)):
        ind = "—" if r.spearman_independent is None else f"{r.spearman_independent:+.2f}"
        means = " / ".join(f"{m:.2f}" for m in r.level_means)
        ind_means = "—" if r.independent_means is None else " / ".join(f"{m:.3g}" for m in r.independent_means)
        ci = "" if not r.spearman_ci else f" [{r.spearman_ci[0]:+.2f}, {r.spearman_ci[1]:+.2f}]"
        lines.append(f"| {r.attribute} | {r.system} | {r.spearman_value_model:+.2f}{ci} | {ind} | {means} | "
                     f"{'yes' if r.monotone else 'no'} | {ind_means} |")
    return "\n".join(lines) + "\n"


RESULT_FILES = ("controllability.md", "controllability.json")


def save_results(results: Sequence[ControlResult], info: dict[str, Any], out: str | Path, *,
                 overwrite: bool = False) -> Path:
    """Write ``controllability.{md,json}`` into ``out`` (an earlier sweep there is replaced only with
    ``overwrite=True``; other files are left alone)."""
    d = prepare_folder(out, RESULT_FILES, overwrite=overwrite, what="controllability results")
    with atomic_file(d / "controllability.md", overwrite=True) as tmp:
        tmp.write_text(to_markdown(results))
    with atomic_file(d / "controllability.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({"results": [r.to_dict() for r in results], **info}, indent=2,
                                  ensure_ascii=False) + "\n")
    return d
