"""Peers side by side: repeng and steering-vectors vs steerlab, same model, pairs and layers.

Measures, in one run:
1. extraction seconds (median of interleaved repeats; ratio peer / ours);
2. cosine between directions: our mean difference vs steering-vectors' mean aggregator, our
   pca_diff vs repeng's pca_diff (same math, so ≈ 1 is the check);
3. that each peer's own application changes logits exactly as our hooks do with its vector;
4. attribute success vs perplexity under our harness at matched strengths (every direction
   rescaled to the norm of our mean difference, all conditions in one batched generation).

repeng 0.4 pins numpy<2 and steering-vectors 0.12 pins transformers<5; both are installed with
--no-deps (``make peers``) and ``np.float_`` is shimmed for repeng's annotations.
Run: python benchmarks/peers.py --out results/peers
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

if not hasattr(np, "float_"):
    np.float_ = np.float64  # type: ignore[attr-defined]  # repeng 0.4 annotations (numpy 2 removed it)

import torch  # noqa: E402

import steerlab  # noqa: E402
from steerlab.eval.harness import load_reference  # noqa: E402
from steerlab.eval.protocol import Condition, Protocol, run_conditions  # noqa: E402
from steerlab.eval.tasks import TASKS  # noqa: E402
from steerlab.methods.vectors import SteeringVector  # noqa: E402


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", default="6-15")
    ap.add_argument("--eval-layer", type=int, default=9)
    ap.add_argument("--strength", type=float, default=6.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-prompts", type=int, default=24)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--out", default="results/peers")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lo, hi = (int(x) for x in args.layers.split("-"))
    layers = list(range(lo, hi + 1))
    lm = steerlab.load_model(args.model)
    data = steerlab.as_contrast("sentiment")
    pairs = list(zip(data.positive, data.negative))

    from repeng import ControlModel, ControlVector, DatasetEntry
    from steering_vectors import mean_aggregator, train_steering_vector

    def ours_md():
        return steerlab.extract(lm, data, layers=layers, aggregator="mean_diff")

    def ours_pca():
        return steerlab.extract(lm, data, layers=layers, aggregator="pca_diff")

    def sv():
        return train_steering_vector(lm.model, lm.tokenizer, pairs, layers=layers, layer_type="decoder_block",
                                     read_token_index=-1, aggregator=mean_aggregator(), batch_size=16,
                                     show_progress=False)

    def rp():
        ds = [DatasetEntry(positive=p, negative=n) for p, n in pairs]
        return ControlVector.train(lm.model, lm.tokenizer, ds, hidden_layers=layers, batch_size=16,
                                   method="pca_diff")

    fns = {"steerlab mean_diff": ours_md, "steerlab pca_diff": ours_pca,
           "steering-vectors mean": sv, "repeng pca_diff": rp}
    times: dict[str, list[float]] = {k: [] for k in fns}
    made = {}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            made[name] = fn()
            times[name].append(time.perf_counter() - t)
    secs = {k: statistics.median(v) for k, v in times.items()}

    vec_md, vec_pca = made["steerlab mean_diff"], made["steerlab pca_diff"]
    sv_dirs = {la: made["steering-vectors mean"].layer_activations[la].float().cpu() for la in layers}
    rp_dirs = {la: torch.tensor(made["repeng pca_diff"].directions[la]).float() for la in layers}
    cos_sv = {la: cos(vec_md.directions[la], sv_dirs[la]) for la in layers}
    cos_rp = {la: cos(vec_pca.directions[la], rp_dirs[la]) for la in layers}

    # 3. peers' own application == our hooks with their vectors
    la, s = args.eval_layer, args.strength
    enc = lm.tokenizer(["The weather this morning was"], return_tensors="pt")
    with torch.no_grad():
        with made["steering-vectors mean"].apply(lm.model, multiplier=s, min_token_index=0):
            sv_logits = lm.model(**enc).logits
        mine = SteeringVector(sv_dirs, model=lm.fingerprint)
        with steerlab.apply(lm, steerlab.Steer(mine, s)):
            our_sv_logits = lm.model(**enc).logits
        cm = ControlModel(lm.model, layers)
        cm.set_control(made["repeng pca_diff"], s)
        rp_logits = cm(**enc).logits
        cm.reset()
        cm.unwrap()
        with steerlab.apply(lm, steerlab.Steer(SteeringVector(rp_dirs, model=lm.fingerprint), s)):
            our_rp_logits = lm.model(**enc).logits
    same_math = {"steering-vectors": float((sv_logits - our_sv_logits).abs().max()),
                 "repeng": float((rp_logits - our_rp_logits).abs().max())}

    # 4. harness at matched strength: every direction rescaled to our mean difference's norm at `la`
    target = float(vec_md.directions[la].norm())
    dirs = {"steerlab mean_diff": vec_md.directions[la], "steerlab pca_diff": vec_pca.directions[la],
            "steering-vectors mean": sv_dirs[la], "repeng pca_diff": rp_dirs[la]}
    task = TASKS.get("sentiment-positive")
    conds = [Condition("unsteered", "unsteered"),
             Condition("prompting", "prompting", prefix=task.instruction + "\n\n")]
    for name, d in dirs.items():
        v = SteeringVector({la: d / d.norm() * target}, model=lm.fingerprint, meta={"name": name})
        conds.append(Condition(f"{name} ×{s:g}", "steered", (steerlab.Steer(v, s),), strength=s))
    proto = Protocol(n_prompts=args.n_prompts, samples=args.samples, max_new_tokens=20)
    ref = load_reference(lm, "auto")
    results = run_conditions(lm, task, conds, proto, ref)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"model": lm.name, "layers": layers, "pairs": len(pairs), "threads": args.threads,
           "extraction_seconds": secs, "extraction_all_runs": times,
           "speed_ratio_vs_ours": {
               "steering-vectors mean / steerlab mean_diff": secs["steering-vectors mean"] / secs["steerlab mean_diff"],
               "repeng pca_diff / steerlab pca_diff": secs["repeng pca_diff"] / secs["steerlab pca_diff"]},
           "cosine_mean_diff_vs_steering_vectors": cos_sv, "cosine_pca_diff_vs_repeng": cos_rp,
           "max_abs_logit_diff_peer_application_vs_ours": same_math,
           "harness": {"task": task.name, "protocol": proto.__dict__, "layer": la, "strength": s,
                       "matched_norm": target, "reference": ref.name,
                       "results": [r.to_dict() for r in results]}}
    (out / "peers.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    lines = [f"# steerlab vs peers on {lm.name} ({len(pairs)} sentiment pairs, layers {lo}-{hi}, "
             f"{args.threads} threads)", "",
             f"| extractor | seconds (median of {args.repeats}) | ratio to steerlab | min / mean cosine to steerlab |",
             "|---|---|---|---|"]
    for name in fns:
        if name.startswith("steerlab"):
            lines.append(f"| {name} | {secs[name]:.2f} | 1.00 | — |")
    lines.append(f"| steering-vectors mean | {secs['steering-vectors mean']:.2f} | "
                 f"{secs['steering-vectors mean'] / secs['steerlab mean_diff']:.2f}× slower | "
                 f"{min(cos_sv.values()):.4f} / {statistics.mean(cos_sv.values()):.4f} (vs mean_diff) |")
    lines.append(f"| repeng pca_diff | {secs['repeng pca_diff']:.2f} | "
                 f"{secs['repeng pca_diff'] / secs['steerlab pca_diff']:.2f}× slower | "
                 f"{min(cos_rp.values()):.4f} / {statistics.mean(cos_rp.values()):.4f} (vs pca_diff) |")
    lines += ["", f"Peers' own application vs our hooks with their vector, max |Δlogit|: {same_math}", "",
              f"Harness ({task.name}, layer {la}, strength {s:g} at matched norm {target:.2f}, "
              f"{proto.n_prompts} prompts × {proto.samples} samples, perplexity under {ref.name}):", "",
              "| condition | % positive [95% CI] | P(pos) | VADER | perplexity |", "|---|---|---|---|---|"]
    for r in results:
        ci = f"[{100 * r.success_ci[0]:.1f}, {100 * r.success_ci[1]:.1f}]"
        lines.append(f"| {r.name} | {100 * r.success:.1f} {ci} | "
                     f"{r.attribute:.3f} | {r.extra.get('vader_mean', float('nan')):.3f} | {r.perplexity:.1f} |")
    (out / "peers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
