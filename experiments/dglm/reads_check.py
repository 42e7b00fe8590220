"""Does a DGLM decoder read its soft prompt? A fast check without sampling text: on held-out pairs,
the decoder's loss on the true continuation given the prefix and the soft prompt made from

- the continuation's own embedding (σ² 0.05),
- another row's embedding (shuffled),
- pure noise (σ² 1, the fallback);

and, with no prefix at all, own vs shuffled (how much of the text the prompt alone carries). A
decoder that follows its prompt has own < shuffled; a collapsed generator gives own = shuffled.
Also the generator's spread (mean pairwise cosine of the prompts of different embeddings).

    python experiments/dglm/reads_check.py ARTIFACT PAIR_CACHE [N]
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch
import torch.nn.functional as F

import steerlab
from steerlab.core.hooks import HookSet
from steerlab.methods.dglm.data import load_pairs
from steerlab.methods.dglm.decoder import batch_inputs, noised
from steerlab.methods.peft_lora import install_lora
from steerlab.models.loading import load_model


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    data = load_pairs(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    lm = load_model("smollm2-135m")
    print(json.dumps(measure(lm, art, data.split("validation"), n), indent=1))


def measure(lm: Any, art: Any, val: Any, n: int) -> dict[str, float]:
    """The readings of the module docstring on the first ``n`` pairs of ``val`` (a PairSet)."""
    pairs = val.pairs[:n]
    e = val.continuation[:n].float()  # (n, D)
    tok = lm.tokenizer
    pre = [tok(p.prefix, add_special_tokens=False)["input_ids"] for p in pairs]
    cont = [tok(p.continuation, add_special_tokens=False)["input_ids"] for p in pairs]
    g = torch.Generator().manual_seed(0)
    shuffled = torch.roll(torch.arange(n), 1)
    out: dict[str, float] = {}
    hooks = HookSet()
    install_lora(lm, hooks, [(art.lora, art.lora_scaling, torch.ones(1))])
    try:
        with torch.no_grad():
            def soft(emb: torch.Tensor, s2: float) -> torch.Tensor:
                sig = torch.full((emb.shape[0],), s2)
                return art.generator(noised(emb, sig, g), sig)  # (n, k, H)

            own, other, noise = soft(e, 0.05), soft(e[shuffled], 0.05), soft(e, 1.0)
            flat = own.reshape(n, -1)
            out["pairwise_cos"] = float(F.cosine_similarity(flat[:, None], flat[None], dim=-1).mean())
            for tag, prompts, prefixes in (("own", own, pre), ("shuffled", other, pre), ("noise", noise, pre),
                                           ("own_noprefix", own, [[] for _ in pre]),
                                           ("shuffled_noprefix", other, [[] for _ in pre])):
                losses = []
                for i in range(0, n, 8):
                    embeds, mask, labels = batch_inputs(lm, prompts[i:i + 8], prefixes[i:i + 8], cont[i:i + 8])
                    logits = lm.model(inputs_embeds=embeds, attention_mask=mask).logits
                    losses.append(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                  labels[:, 1:].reshape(-1), ignore_index=-100))
                out[f"loss_{tag}"] = float(torch.stack(losses).mean())
    finally:
        hooks.remove()
    out["reads_gap"] = out["loss_shuffled"] - out["loss_own"]
    out["reads_gap_noprefix"] = out["loss_shuffled_noprefix"] - out["loss_own_noprefix"]
    return out


if __name__ == "__main__":
    main()
