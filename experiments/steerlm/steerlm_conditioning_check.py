"""Does a SteerLM adapter use its attribute string? Response loss with true vs shuffled labels.

If the adapter conditions on the attributes, giving each response another example's labels must
raise its loss; equal losses mean it learnt the response distribution but not the knobs.
Run: python experiments/steerlm/steerlm_conditioning_check.py --adapter results/steerlm/steerlm-r1 \
         --data results/steerlm/data/annotated.v2t.jsonl
"""

from __future__ import annotations

import argparse
import random

import torch

import steerlab
from steerlab.methods.steerlm import Example, read_records
from steerlab.methods.steerlm.sft import _collate, encode_example


def response_loss(lm, art, examples: list[Example], with_adapter: bool, max_length: int) -> float:  # type: ignore[no-untyped-def]
    """Mean per-token loss over the responses (prompt tokens masked)."""
    enc = [encode_example(lm, x, art.schema, art.template, art.chat, max_length, art.placement) for x in examples]
    enc = [e for e in enc if e]
    total, count = 0.0, 0
    for i in range(0, len(enc), 16):
        ids, labels, mask = _collate(enc[i:i + 16], lm.tokenizer.pad_token_id or 0)
        with torch.no_grad(), steerlab.apply(lm, *[steerlab.prepare(lm, a) for a in ([art] if with_adapter else [])]):
            logits = lm.model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
        total += float(torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                         labels[:, 1:].reshape(-1), ignore_index=-100,
                                                         reduction="sum"))
        count += int((labels[:, 1:] != -100).sum())
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", required=True, action="append")
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    for path in args.adapter:
        art = steerlab.load_artifact(path)
        lm = steerlab.load_model(art.model.name if art.model else "smollm2-135m")
        examples = read_records(args.data, art.schema)
        random.Random(1).shuffle(examples)
        examples = examples[: args.n]
        shuffled = [Example(e.prompt, e.response, examples[(i + 37) % len(examples)].attributes)
                    for i, e in enumerate(examples)]
        true = response_loss(lm, art, examples, True, args.max_length)
        other = response_loss(lm, art, shuffled, True, args.max_length)
        base = response_loss(lm, art, examples, False, args.max_length)
        print(f"{path}: response loss base model {base:.4f}; adapter with true labels {true:.4f}, "
              f"with shuffled labels {other:.4f} (gap {other - true:+.4f})")


if __name__ == "__main__":
    main()
