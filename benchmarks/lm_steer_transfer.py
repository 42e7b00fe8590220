"""Transfer an LM-Steer steer between packaged models and measure its effect on the target.

Default: a steer trained on smollm2-135m (hidden 576, 49k vocab) → qwen2.5-0.5b (hidden 896, 151k
vocab; different tokenizers, so the map is fitted over token strings both vocabularies share).
Measures mean sentiment (probe) of continuations on the target at −v, 0, +v in one batched pass.
A natively trained target steer is the comparison to add when there is time: it needs
``steerlab train lm-steer --model qwen2.5-0.5b --data rt-sentiment --out ...`` (about 4× the
source's training time on CPU).
Run: python benchmarks/lm_steer_transfer.py --lm-steer DIR --to qwen2.5-0.5b --out results/transfer
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import steerlab
from steerlab.methods.lm_steer.transfer import transfer
from steerlab.scoring.scorers import get_scorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm-steer", required=True)
    ap.add_argument("--to", default="qwen2.5-0.5b")
    ap.add_argument("--native", default=None, help="optional natively trained steer on the target")
    ap.add_argument("--values", default="5,10,20")
    ap.add_argument("--n-prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--raw", action="store_true", help="also measure the uncalibrated transfer")
    ap.add_argument("--out", default="results/transfer")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    art = steerlab.load_artifact(args.lm_steer)
    source = steerlab.load_model(art.model.name if art.model else "smollm2-135m")
    target = steerlab.load_model(args.to)
    moved = transfer(art, source, target)
    out = Path(args.out)
    moved.save(out / "transferred", overwrite=True)
    steers = {"transferred": moved}
    if args.raw:  # the official recipe without our sign/scale calibration
        steers["transferred (uncalibrated)"] = transfer(art, source, target, calibrate=False)
    if args.native:
        steers["native"] = steerlab.load_artifact(args.native)
    prompts = steerlab.load_prompts("sentiment_neutral")[: args.n_prompts]
    texts, rows, keys = [], [], []
    values = [float(v) for v in args.values.split(",")]
    for name, st in [("unsteered", None), *steers.items()]:
        for v in ([0.0] if st is None else [-x for x in reversed(values)] + values):
            for p in prompts:
                for _ in range(args.samples):
                    texts.append(p)
                    rows.append(None if st is None else steerlab.Steer(st, v))
                    keys.append((name, v))
    outs = steerlab.generate(target, texts, steering=rows, max_new_tokens=20, temperature=1.0, top_p=0.9, seed=0)
    probe = get_scorer("sentiment")([p + o for p, o in zip(texts, outs)])
    vader = get_scorer("vader")(outs)
    table: dict[str, dict[str, float]] = {}
    for (name, v), s1, s2 in zip(keys, probe, vader):
        table.setdefault(f"{name} {v:+g}", {"probe": [], "vader": []})  # type: ignore[dict-item]
        table[f"{name} {v:+g}"]["probe"].append(s1)  # type: ignore[attr-defined]
        table[f"{name} {v:+g}"]["vader"].append(s2)  # type: ignore[attr-defined]
    summary = {k: {m: float(np.mean(x)) for m, x in d.items()} for k, d in table.items()}
    fit = moved.meta["provenance"]["transfer"]
    lines = [f"Transfer {source.name} → {target.name}: {fit['shared_tokens']} shared tokens, map fitted on "
             f"{fit['top_k']}, relative error {fit['backward_rel_error']:.3f}; "
             f"{args.n_prompts} neutral prompts × {args.samples} samples on the target; calibration "
             f"{json.dumps(fit.get('calibration', {}).get('steers', []))}", "",
             "| condition | P(positive) | VADER |", "|---|---|---|"]
    lines += [f"| {k} | {v['probe']:.3f} | {v['vader']:+.3f} |" for k, v in summary.items()]
    (out / "transfer.md").write_text("\n".join(lines) + "\n")
    (out / "transfer.json").write_text(json.dumps({"fit": fit, "summary": summary}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
