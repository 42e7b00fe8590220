"""Transfer a trained steer to another model (official ``experiments/steer_transfer.py``).

The two models' output embeddings are related by an explicit linear map learned over their shared
vocabulary (token strings present in both tokenizers; the first ``top_k`` in the target's id
order, 4000 in the official code). We solve the same least-squares objective in closed form
(``torch.linalg.lstsq``) instead of Adam, then, as the official code does, normalise the rows of
the target→source map B and set ``P_target = B · P_source`` for both projectors.
"""

from __future__ import annotations

from typing import Any

import torch

from steerlab.core.model import LoadedModel
from steerlab.errors import SteerlabError
from steerlab.methods.lm_steer.artifact import LMSteer


def shared_vocabulary(source: LoadedModel, target: LoadedModel) -> tuple[list[int], list[int]]:
    """(source ids, target ids) of token strings present in both vocabularies, in target id order."""
    src_vocab = source.tokenizer.get_vocab()
    tgt = sorted(target.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    src_n = source.head_weight().shape[0]
    tgt_n = target.head_weight().shape[0]
    pairs = [(src_vocab[tok], idx) for tok, idx in tgt if tok in src_vocab and src_vocab[tok] < src_n and idx < tgt_n]
    return [a for a, _ in pairs], [b for _, b in pairs]


def transfer(steer: LMSteer, source: LoadedModel, target: LoadedModel, *, top_k: int = 4000,
             calibrate: bool = True, calibration_texts: list[str] | None = None) -> LMSteer:
    """Map ``steer`` (trained on ``source``) onto ``target``'s hidden space.

    ``calibrate`` (our addition to the official recipe) compares the mean logit shift the steer
    causes on the source with the mapped steer's shift on the target, over the shared tokens and
    a few neutral texts. The embedding map says nothing about how each model's *hidden* states sit
    relative to its embeddings, and between model families the mapped transform can come out
    reversed (measured smollm2-135m → qwen2.5-0.5b: correlation < 0, so +v made text more
    negative). A negative correlation flips the steer; the scale makes a value move the shared
    logits as much on the target as on the source. Both are recorded in the provenance.
    """
    if steer.adaptor_class != "multiply":
        raise SteerlabError("transfer maps the multiply adaptor's projectors; this steer is "
                            f"{steer.adaptor_class!r}")
    if steer.model is not None:
        steer.model.check(source.fingerprint)
    src_ids, tgt_ids = shared_vocabulary(source, target)
    if len(src_ids) < 100:
        raise SteerlabError(f"only {len(src_ids)} shared tokens between {source.name} and {target.name}")
    n = min(top_k, len(src_ids))
    e_src = source.head_weight()[src_ids[:n]]  # (n, Hs)
    e_tgt = target.head_weight()[tgt_ids[:n]]  # (n, Ht)
    backward = torch.linalg.lstsq(e_tgt, e_src).solution  # (Ht, Hs): e_tgt @ B ≈ e_src
    forward = torch.linalg.lstsq(e_src, e_tgt).solution  # (Hs, Ht), reported for fit quality
    fit = {"shared_tokens": len(src_ids), "top_k": n,
           "backward_rel_error": float((e_tgt @ backward - e_src).norm() / e_src.norm()),
           "forward_rel_error": float((e_src @ forward - e_tgt).norm() / e_tgt.norm())}
    b = backward / backward.norm(dim=1, keepdim=True)  # row-normalised, as the official code
    params = {name: torch.einsum("ts,ksr->ktr", b, p) for name, p in steer.params.items()}  # (K, Ht, r)
    meta = {"name": f"{steer.name}→{target.name}",
            "provenance": {**steer.meta.get("provenance", {}), "transferred_from": source.name, "transfer": fit},
            "training": steer.meta.get("training", {})}
    moved = LMSteer(params, steer.adaptor_class, steer.epsilon, list(steer.steer_names), steer.dummy_steer,
                    steer.rank, target.fingerprint, meta)
    if calibrate:
        moved = _calibrate(moved, steer, source, target, src_ids, tgt_ids, fit, calibration_texts)
    return moved


def _calibrate(moved: LMSteer, steer: LMSteer, source: LoadedModel, target: LoadedModel, src_ids: list[int],
               tgt_ids: list[int], fit: dict[str, Any], texts: list[str] | None) -> LMSteer:
    """Sign and scale per steer so the target's shared-token logit shift matches the source's."""
    from steerlab.data.pairs import load_prompts
    from steerlab.methods.lm_steer.interpret import mean_logit_shift

    texts = texts or load_prompts("neutral")[:16]
    p2 = moved.params["projector2"].clone()  # (K, Ht, r)
    per_steer = []
    for k in range(steer.num_steers):
        d_src = mean_logit_shift(source, steer, texts, value=1.0, steer_index=k)[src_ids]  # (n,)
        d_tgt = mean_logit_shift(target, moved, texts, value=1.0, steer_index=k)[tgt_ids]  # (n,)
        d_src, d_tgt = d_src - d_src.mean(), d_tgt - d_tgt.mean()  # a uniform shift changes no probability
        corr = float((d_src @ d_tgt) / (d_src.norm() * d_tgt.norm() + 1e-12))
        scale = float(d_src.norm() / (d_tgt.norm() + 1e-12))
        factor = (-1.0 if corr < 0 else 1.0) * scale
        p2[k] = p2[k] * factor
        per_steer.append({"steer": moved.steer_names[k], "correlation_before": corr, "flipped": corr < 0,
                          "scale": scale})
    fit["calibration"] = {"texts": len(texts), "steers": per_steer}
    return LMSteer({**moved.params, "projector2": p2}, moved.adaptor_class, moved.epsilon, moved.steer_names,
                   moved.dummy_steer, moved.rank, moved.model, moved.meta)
