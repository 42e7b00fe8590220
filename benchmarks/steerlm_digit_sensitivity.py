"""Does a SteerLM adapter read one attribute's digit on real data? A likelihood check (~1 min).

For response pairs that differ on ``--attribute`` (default: the Mallard corpus's plain and funny
replies to the same setup, humour level from a person's rating), the mean per-token loss of each
response is measured with that attribute's digit set low and high (the other attributes at the
record's labels). An adapter that reads the digit makes the high response likelier under the high
digit and the low response likelier under the low digit:

    effect = mean over high responses [loss(low digit) − loss(high digit)]
           + mean over low responses  [loss(high digit) − loss(low digit)]   (nats/token; 0 = ignores it)

Sampled sweeps need hundreds of generations to see a small effect; this needs a forward pass per
response and digit, so it separates "the adapter never learnt the digit" from "it learnt it but
sampling does not show it".

    python benchmarks/steerlm_digit_sensitivity.py results/r2 results/r3h --records mix.v2t.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import steerlab
from steerlab.methods.steerlm import Example, read_records
from steerlab.methods.steerlm.annotate import humor_corpus_pairs
from steerlab.methods.steerlm.sft import _collate, encode_example


def losses(lm, art, examples: list[Example], attribute: str, digit: int, batch: int = 16) -> list[float]:
    """Mean per-token loss of each example's response with ``attribute`` set to ``digit``."""
    out = []
    with torch.no_grad(), steerlab.apply(lm, art):  # installed once for all batches
        for i in range(0, len(examples), batch):
            chunk = [Example(e.prompt, e.response, {**e.attributes, attribute: digit})
                     for e in examples[i:i + batch]]
            enc = [encode_example(lm, e, art.schema, art.template, art.chat, 160, art.placement) for e in chunk]
            ids, labels, mask = _collate([e for e in enc if e], lm.tokenizer.pad_token_id or 0)
            logits = lm.model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
            tok = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:],
                                                    ignore_index=-100, reduction="none")  # (B, T-1)
            n = (labels[:, 1:] != -100).sum(1).clamp(min=1)
            out += (tok.sum(1) / n).tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapters", nargs="+", type=Path)
    ap.add_argument("--attribute", default="humor")
    ap.add_argument("--records", type=Path, help="records to take low/high pairs from (default: Mallard setups)")
    ap.add_argument("--low", type=int, default=0)
    ap.add_argument("--high", type=int, default=4)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    lm = steerlab.load_model(args.model)
    arts = [steerlab.load_artifact(p) for p in args.adapters]
    schema = arts[0].schema
    if args.records:
        examples = read_records(args.records, schema)
    else:
        pairs, given = humor_corpus_pairs()
        examples = [Example(p, r, schema.resolve(g), s) for (p, r, s), g in zip(pairs, given)]
    lo = [e for e in examples if e.attributes[args.attribute] <= 1]
    hi = [e for e in examples if e.attributes[args.attribute] >= 3]
    print(f"{len(lo)} low and {len(hi)} high {args.attribute} responses")
    for path, art in zip(args.adapters, arts):
        d_hi = [a - b for a, b in zip(losses(lm, art, hi, args.attribute, args.low),
                                      losses(lm, art, hi, args.attribute, args.high))]
        d_lo = [a - b for a, b in zip(losses(lm, art, lo, args.attribute, args.high),
                                      losses(lm, art, lo, args.attribute, args.low))]
        m_hi, m_lo = sum(d_hi) / len(d_hi), sum(d_lo) / len(d_lo)
        print(f"{path}: effect {m_hi + m_lo:+.4f} nats/token (high responses {m_hi:+.4f}, low {m_lo:+.4f}; "
              f"high responses favoured by the high digit: {sum(d > 0 for d in d_hi) / len(d_hi):.0%})")


if __name__ == "__main__":
    main()
