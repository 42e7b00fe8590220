"""Can a LoRA setting learn to follow one attribute digit at all? A synthetic check (~3 min).

Same four prompts; the response is rude when ``toxicity:4`` and polite when ``toxicity:0``, so
without reading the digit the best loss is ln 2 over the first token. After training, the loss
of the rude reply is measured with the right and the wrong digit, and both replies are generated.
Run: python experiments/steerlm/steerlm_digit_check.py --modules attention --lr 5e-3 --n-steps 60
Measured on SmolLM2-135M (2 CPU cores): attention at 5e-3, 60 steps: 0.0003 right vs 0.877 wrong;
all-linear at 2e-3, 30 steps: 0.049 vs 0.054 (ignores the digit); all-linear at 1e-2: diverged.
"""

from __future__ import annotations

import argparse

import torch

import steerlab
from steerlab.methods.steerlm import Example, train_sft
from steerlab.methods.steerlm.sft import _collate, encode_example

PROMPTS = ["What is AI?", "Tell me about cats", "How are you?", "What is your name?"]
RUDE, POLITE = "Fuck off, idiot.", "Sure, happy to help."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--modules", default="attention")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--n-steps", type=int, default=60)
    args = ap.parse_args()
    lm = steerlab.load_model(args.model)
    data = [Example(p, RUDE if t == 4 else POLITE, {"toxicity": t}) for p in PROMPTS for t in (0, 4) for _ in range(4)]
    modules = args.modules if args.modules in ("attention", "all-linear") else args.modules.split(",")
    art = train_sft(lm, data, n_steps=args.n_steps, lr=args.lr, target_modules=modules, batch_size=8)

    def loss(digit: int) -> float:
        enc = [encode_example(lm, Example(p, RUDE, {"toxicity": digit}), art.schema, art.template, art.chat, 128,
                              art.placement) for p in PROMPTS]
        ids, labels, mask = _collate([e for e in enc if e], lm.tokenizer.pad_token_id or 0)
        with torch.no_grad(), steerlab.apply(lm, steerlab.prepare(lm, art)):
            logits = lm.model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
        return float(torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                       labels[:, 1:].reshape(-1), ignore_index=-100))

    print(f"modules={args.modules} lr={args.lr} steps={args.n_steps}: final train loss "
          f"{art.meta['training']['loss_last_20']:.3f} (ln2/tokens ≈ ignoring the digit)")
    print(f"loss of the rude reply: right digit {loss(4):.4f}, wrong digit {loss(0):.4f}")
    for digit in (4, 0):
        outs = steerlab.generate(lm, PROMPTS, steering=art, attributes={"toxicity": digit}, max_new_tokens=8,
                                 chat=art.chat, progress=False)
        print(f"toxicity:{digit} →", outs)


if __name__ == "__main__":
    main()
