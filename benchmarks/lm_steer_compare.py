"""LM-Steer vs activation steering vs prompting, sentiment both ways, under the evaluation harness.

One generation pass covers every condition (same prompts, seed, batch): unsteered, both prompting
baselines, the activation vector (layer 9) at ±strengths and an LM-Steer artifact at ±values.
Each direction gets a standard report (JSON + Markdown + plots).
Run: python benchmarks/lm_steer_compare.py --lm-steer DIR --out results/lm_steer
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sentiment_reports import reports_from_samples

import steerlab
from steerlab.eval.harness import load_reference
from steerlab.eval.protocol import Condition, Protocol, sample_conditions
from steerlab.eval.tasks import TASKS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm-steer", required=True)
    ap.add_argument("--values", default="3,5,8")
    ap.add_argument("--vector-strengths", default="4,6")
    ap.add_argument("--layer", type=int, default=9)
    ap.add_argument("--n-prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/lm_steer")
    ap.add_argument("--compose-value", type=float, default=5.0)
    ap.add_argument("--formal-layer", type=int, default=9)
    ap.add_argument("--formal-strength", type=float, default=4.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    art = steerlab.load_artifact(args.lm_steer)
    lm = steerlab.load_model(art.model.name if art.model else "smollm2-135m")
    vec = steerlab.extract(lm, "sentiment", layers=[args.layer], name="vector")
    pos, neg = TASKS.get("sentiment-positive"), TASKS.get("sentiment-negative")
    conds = [Condition("unsteered", "unsteered"),
             Condition("prompting (positive)", "prompting", prefix=pos.instruction + "\n\n"),
             Condition("prompting (negative)", "prompting", prefix=neg.instruction + "\n\n")]
    for label, artifact, mags in ((f"vector L{args.layer}", vec, args.vector_strengths),
                                  ("lm-steer", art, args.values)):
        for m in (float(x) for x in mags.split(",")):
            for s in (m, -m):
                conds.append(Condition(f"{label} ×{s:+g}", "steered", (steerlab.Steer(artifact, s),), strength=s,
                                       options={"method": artifact.method}))
    # composition: the LM-Steer sentiment steer plus a formality vector, alone and together
    formal = steerlab.extract(lm, "formality", layers=[args.formal_layer], name="formality")
    sent = steerlab.Steer(art, args.compose_value)
    form = steerlab.Steer(formal, args.formal_strength)
    compose = [Condition("compose: lm-steer only", "compose", (sent,)),
               Condition("compose: formality only", "compose", (form,)),
               Condition("compose: lm-steer + formality", "compose", (sent, form))]
    proto = Protocol(n_prompts=args.n_prompts, samples=args.samples, max_new_tokens=20)
    ref = load_reference(lm, "auto")
    samples = sample_conditions(lm, pos, conds + compose, proto, ref)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _composition_table(samples, conds, compose, out)
    for report in reports_from_samples(samples, proto, lm.name, ref, ref is lm, "lm-steer vs vector", "mixed"):
        report.save(out, overwrite=True)
        print(report.to_markdown())


def _composition_table(samples, conds, compose, out: Path) -> None:
    """Sentiment (shipped probe) and formality (probe trained here on the formality pairs) per row."""
    import numpy as np

    from steerlab.scoring.probes import train_probe

    fp = steerlab.as_contrast("formality")
    formality = train_probe(fp.positive + fp.negative, [1] * len(fp.positive) + [0] * len(fp.negative),
                            source="steerlab:formality pairs")
    per = len(samples.prompts) * samples.k
    names = ["unsteered"] + [c.name for c in compose]
    all_conds = [c.name for c in samples.conditions]
    lines = ["| condition | P(positive) (sentiment probe) | P(formal) (formality probe) |", "|---|---|---|"]
    for name in names:
        i = all_conds.index(name)
        sl = slice(i * per, (i + 1) * per)
        f = formality.score(samples.outs[sl])
        lines.append(f"| {name} | {np.mean(samples.scores[sl]):.3f} | {np.mean(f):.3f} |")
    text = (f"Composition (formality probe held-out accuracy {formality.info['heldout_accuracy']:.2f} on "
            "team-written pairs)\n\n" + "\n".join(lines) + "\n")
    (out / "composition.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
