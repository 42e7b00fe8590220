"""Does attribute-conditioned SFT learn the knobs from contrast pairs? Per-attribute label-flip gaps.

Trains attention LoRA on :func:`contrast_subset` of an annotated file (prompts split train /
held-out), then, for every attribute, compares the response loss with the true labels against the
loss with that one attribute flipped to the far end of its range (level ≤ 2 → 4, else 0). A
positive gap on *held-out prompts* means the adapter reads that digit and generalises.
Run: python experiments/steerlm/steerlm_contrast_check.py --data results/steerlm3/data/annotated.v2t.jsonl \
         --steps 60 --rounds 2 --out results/steerlm3/contrast
"""

from __future__ import annotations

import argparse
import random
import time

import torch

import steerlab
from steerlab.methods.steerlm import DEFAULT_SCHEMA, Example, read_records, train_sft
from steerlab.methods.steerlm.records import contrast_subset
from steerlab.methods.steerlm.sft import _collate, encode_example


def losses(lm, art, examples: list[Example], max_length: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Mean response loss per example (prompt tokens masked)."""
    enc = [encode_example(lm, x, art.schema, art.template, art.chat, max_length, art.placement) for x in examples]
    out: list[float] = []
    for i in range(0, len(enc), 16):
        ids, labels, mask = _collate(enc[i:i + 16], lm.tokenizer.pad_token_id or 0)
        with torch.no_grad(), steerlab.apply(lm, steerlab.prepare(lm, art)):
            logits = lm.model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
        tok = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100,
                                                reduction="none")  # (B, T-1)
        n = (labels[:, 1:] != -100).sum(1).clamp(min=1)
        out.extend((tok.sum(1) / n).tolist())
    return out


def flip_gaps(lm, art, examples: list[Example], max_length: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    base = losses(lm, art, examples, max_length)
    gaps = {}
    for attr in art.schema.attributes:
        flipped = [Example(e.prompt, e.response, {**e.attributes, attr.name: attr.high if e.attributes[attr.name]
                                                  <= (attr.low + attr.high) // 2 else attr.low}) for e in examples]
        other = losses(lm, art, flipped, max_length)
        gaps[attr.name] = sum(o - b for o, b in zip(other, base)) / len(base)
    gaps["_true_loss"] = sum(base) / len(base)
    return gaps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--min-gap", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--n-eval", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=0, help="First train on the contrast records of this many prompts.")
    ap.add_argument("--warmup-steps", type=int, default=60)
    ap.add_argument("--lr2", type=float, default=0.0, help="lr after the warm-up (default --lr)")
    ap.add_argument("--mix-warmup", action="store_true", help="keep the warm-up records in the later rounds")
    ap.add_argument("--value-model", default="", help="probe generation: measured attribute at level 0 vs 4")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    lm = steerlab.load_model("smollm2-135m")
    examples = read_records(args.data, DEFAULT_SCHEMA)
    prompts = sorted({e.prompt for e in examples})
    random.Random(0).shuffle(prompts)
    held = set(prompts[: len(prompts) // 5])
    attrs = [a for a in DEFAULT_SCHEMA.names if a != "quality"]
    train = contrast_subset([e for e in examples if e.prompt not in held], attrs, args.min_gap)
    test = contrast_subset([e for e in examples if e.prompt in held], attrs, args.min_gap)
    rng = random.Random(1)
    test_eval = rng.sample(test, min(args.n_eval, len(test)))
    train_eval = rng.sample(train, min(args.n_eval, len(train)))
    print(f"contrast subset: {len(train)} train / {len(test)} held-out examples", flush=True)
    art = None
    if args.warmup:
        keep = sorted({e.prompt for e in train})[: args.warmup]
        small = [e for e in train if e.prompt in keep]
        t0 = time.perf_counter()
        art = train_sft(lm, small, n_steps=args.warmup_steps, lr=args.lr, progress=False)
        dt = time.perf_counter() - t0
        for label, subset in (("warm-up set", small[: args.n_eval]), ("held-out", test_eval)):
            g = flip_gaps(lm, art, subset, args.max_length)
            gaps = " ".join(f"{k} {v:+.4f}" for k, v in g.items() if k != "_true_loss")
            print(f"warm-up {args.warmup_steps} steps on {len(small)} examples ({dt:.0f}s) {label}: loss "
                  f"{g['_true_loss']:.3f}; flip gaps {gaps}", flush=True)
    for rnd in range(args.rounds):
        t0 = time.perf_counter()
        data = train + (small if args.warmup and args.mix_warmup else [])
        art = train_sft(lm, data, n_steps=args.steps, lr=args.lr2 or args.lr, init=art, seed=rnd, progress=False)
        dt = time.perf_counter() - t0
        for label, subset in (("train", train_eval), ("held-out", test_eval)):
            g = flip_gaps(lm, art, subset, args.max_length)
            print(f"after {(rnd + 1) * args.steps} steps ({dt:.0f}s) {label}: loss {g.pop('_true_loss'):.3f}; "
                  "flip gaps " + " ".join(f"{k} {v:+.4f}" for k, v in g.items()), flush=True)
        if args.out:
            art.save(args.out, overwrite=True)
    if args.value_model and art is not None:
        probe(lm, art, sorted(held)[:12], args.value_model)


def probe(lm, art, prompts: list[str], vm_path: str) -> None:  # type: ignore[no-untyped-def]
    """Greedy generations on held-out prompts with one attribute at 0 and at 4; the value model's means."""
    from steerlab.methods.steerlm.value_model import ValueModel

    vm = ValueModel.load(vm_path)
    for name in ("verbosity", "toxicity", "sentiment", "humor"):
        means = []
        for level in (0, 4):
            texts = steerlab.generate(lm, prompts, art, attributes={name: level}, max_new_tokens=48, chat=art.chat,
                                      progress=False)
            scores = vm.score(prompts, texts)
            means.append(sum(s[name] for s in scores) / len(scores))
        print(f"probe {name}: measured {means[0]:.2f} at 0 vs {means[1]:.2f} at 4 ({len(prompts)} held-out prompts)",
              flush=True)


if __name__ == "__main__":
    main()
