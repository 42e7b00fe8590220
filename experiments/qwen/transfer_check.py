"""Trained vs transferred LM-Steer sentiment steers on qwen2.5-1.5b, by likelihood (no sampling).

For held-out Rotten Tomatoes snippets (movies in half 1; the steers trained on half 0), the mean
per-token log-likelihood of the fresh (+) and the rotten (−) snippets under each steer at several
values: a sentiment steer should raise log p(fresh) − log p(rotten) as its value grows, and cost
little likelihood on both. Prints one line per steer and value.

Run: python experiments/qwen/transfer_check.py TRANSFERRED_DIR   (from ``steerlab transfer
src/steerlab/artifacts/lmsteer-sentiment --to qwen2.5-1.5b --out TRANSFERRED_DIR``)
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

import torch

import steerlab
from steerlab.data.corpora import movie_split, rotten_tomatoes

N = 48
VALUES = (-2.0, -1.0, 0.0, 1.0, 2.0)


def mean_logp(lm: steerlab.LoadedModel, texts: list[str], steer: steerlab.Steer | None) -> float:
    """Mean per-token log-likelihood of ``texts`` (batch of right-padded rows)."""
    enc = lm.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=40)
    ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T)
    ctx = steerlab.apply(lm, steer) if steer is not None else nullcontext()
    with torch.no_grad(), ctx:
        logits = lm.model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    m = mask[:, 1:].float()
    return float((logp * m).sum() / m.sum())


def main(transferred: str) -> None:
    torch.manual_seed(0)
    docs = movie_split(rotten_tomatoes(), 1)
    fresh = [d.text for d in docs if d.label == "fresh"][:N]
    rotten = [d.text for d in docs if d.label == "rotten"][:N]
    lm = steerlab.load_model("qwen2.5-1.5b")
    lm.tokenizer.padding_side = "right"
    if lm.tokenizer.pad_token is None:
        lm.tokenizer.pad_token = lm.tokenizer.eos_token
    for name, path in (("trained", "lmsteer-sentiment-qwen1.5b"), ("transferred", transferred)):
        art = steerlab.load_artifact(path)
        for v in VALUES:
            steer = None if v == 0 else steerlab.Steer(art, v, {"steer": 0})
            lp, ln = mean_logp(lm, fresh, steer), mean_logp(lm, rotten, steer)
            print(f"{name:12s} value {v:+.1f}: logp fresh {lp:.3f} rotten {ln:.3f} margin {lp - ln:+.3f}",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
