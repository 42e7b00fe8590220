"""DGLM's training data: (prefix, continuation) pairs cut from packaged running text, and their
sentence embeddings, cached with their provenance.

Pairs follow the paper: a prefix of ``prefix_tokens`` (32) decoder tokens and the continuation's
next ``continuation_tokens`` (32). Long documents give consecutive non-overlapping windows; a
document shorter than a full window but with at least ``min_tokens`` tokens gives one pair split
at its middle (tweets, review snippets), so the diffusion model also sees short continuations.
Documents are assigned to train / validation / test by a hash of their group (article, speaker,
movie), so held-out prefixes come from documents never trained on. Documents that open with a
prompt of the shipped evaluation prompt sets (the RT plot summaries and offensive tweets the eval
tasks score on) always go to the test split, so DGLM never trains on what scores it.

Embeddings come from a packaged sentence encoder (unit-normalised); a cache folder holds
``pairs.jsonl`` (prefix, continuation, source, split), ``embeddings.safetensors`` (prefix and
continuation, float16, (N, D) each) and ``provenance.json`` (sources and their counts, tokenizer,
encoder, window sizes, a digest of the pairs). A cache is reused only when its provenance
matches the request exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from steerlab.core.atomic import atomic_dir
from steerlab.errors import DataError, SteerlabError
from steerlab.progress import maybe_bar

PAIRS = "pairs.jsonl"
EMBEDDINGS = "embeddings.safetensors"
PROVENANCE = "provenance.json"
SPLITS = {"train": 0.96, "validation": 0.02, "test": 0.02}
EVAL_PROMPT_SETS = ("neutral", "sentiment_neutral", "sentiment_positive", "sentiment_negative", "toxic")
"""Shipped prompt sets the evaluation tasks score on: their documents are held out of training."""
_KEY = 24  # characters of a document's opening compared with the evaluation prompts' openings


@dataclass(frozen=True)
class Pair:
    prefix: str
    continuation: str
    source: str
    split: str


def corpora() -> dict[str, Callable[[], Sequence[Any]]]:
    """The packaged corpora DGLM cuts pairs from, by source name."""
    from steerlab.data import corpora as c

    return {"news": c.news_articles, "commons": c.commons_speeches, "health-tweets": c.health_tweets,
            "tweets": c.tweets, "rotten-tomatoes": c.rotten_tomatoes,
            "chatterbot": c.chatterbot}


def _split_of(key: str) -> str:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    edge = 0.0
    for name, share in SPLITS.items():
        edge += share
        if h <= edge:
            return name
    return "train"


def _text_and_group(doc: Any) -> tuple[str, str]:
    """A corpus item's text and the group that decides its split (a document's whole text goes to
    one split)."""
    if hasattr(doc, "reply"):  # a chatterbot exchange: the line and its reply make one short dialogue
        return f"{doc.prompt} {doc.reply}".strip(), f"{doc.topic}:{doc.conversation}"
    return str(doc.text), str(doc.group or doc.text[:64])


def eval_openings() -> frozenset[str]:
    """The openings (first characters, whitespace-normalised) of every shipped evaluation prompt."""
    from steerlab.data.pairs import load_prompts

    return frozenset(_opening(p) for name in EVAL_PROMPT_SETS for p in load_prompts(name))


def _opening(text: str) -> str:
    return " ".join(text.split())[:_KEY]


def cut_pairs(tokenizer: Any, docs: Iterable[Any], source: str, *, prefix_tokens: int = 32,
              continuation_tokens: int = 32, min_tokens: int = 16,
              held_out: frozenset[str] = frozenset()) -> list[Pair]:
    """Pairs from one corpus (see the module docs); documents whose opening is in ``held_out``
    (see :func:`eval_openings`) go to the test split."""
    if prefix_tokens < 1 or continuation_tokens < 1 or min_tokens < 2:
        raise SteerlabError("prefix_tokens and continuation_tokens must be >= 1 and min_tokens >= 2")
    window = prefix_tokens + continuation_tokens
    out = []
    for doc in docs:
        text, group = _text_and_group(doc)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        split = "test" if _opening(text) in held_out else _split_of(f"{source}:{group}")
        if len(ids) >= window:
            for start in range(0, len(ids) - window + 1, window):
                p, c = ids[start:start + prefix_tokens], ids[start + prefix_tokens:start + window]
                out.append(Pair(tokenizer.decode(p), tokenizer.decode(c), source, split))
        elif len(ids) >= min_tokens:
            half = len(ids) // 2
            out.append(Pair(tokenizer.decode(ids[:half]), tokenizer.decode(ids[half:]), source, split))
    return [p for p in out if p.prefix.strip() and p.continuation.strip()]


@dataclass
class PairSet:
    """Pairs with their embeddings: ``prefix`` and ``continuation`` are (N, D) float32."""

    pairs: list[Pair]
    prefix: torch.Tensor  # (N, D)
    continuation: torch.Tensor  # (N, D)
    provenance: dict[str, Any]

    def split(self, name: str) -> PairSet:
        idx = [i for i, p in enumerate(self.pairs) if p.split == name]
        if not idx:
            raise DataError(f"no pairs in split {name!r}")
        sel = torch.tensor(idx)
        return PairSet([self.pairs[i] for i in idx], self.prefix[sel], self.continuation[sel], self.provenance)

    def guidance_covariance(self) -> torch.Tensor:
        """Covariance (D, D) of the training split's continuation embeddings, unit-normalised as
        the probes read them: the metric of DGLM's covariance guidance step (the distribution the
        diffusion model's proposals come from)."""
        x = self.split("train").continuation.double()  # (N, D)
        if len(x) < 2:
            raise DataError("the covariance needs at least 2 training pairs")
        x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        x = x - x.mean(0)
        return (x.T @ x / (len(x) - 1)).float()  # (D, D)


def build_pairs(tokenizer: Any, tokenizer_name: str, *, sources: Sequence[str] | None = None,
                encoder: str | None = None, prefix_tokens: int = 32, continuation_tokens: int = 32,
                min_tokens: int = 16, cache_dir: str | Path | None = None, progress: bool = True,
                batch_size: int = 256) -> PairSet:
    """Cut pairs from ``sources`` (default: every packaged corpus) and embed them, reusing a cache
    whose provenance matches."""
    from steerlab.scoring.encoders import DEFAULT_ENCODER

    encoder = encoder or DEFAULT_ENCODER
    table = corpora()
    sources = list(sources or table)
    unknown = sorted(set(sources) - set(table))
    if unknown:
        raise SteerlabError(f"unknown DGLM corpus {unknown}; known: {', '.join(table)}")
    want = {"format_version": 1, "tokenizer": tokenizer_name, "encoder": encoder, "sources": sources,
            "prefix_tokens": prefix_tokens, "continuation_tokens": continuation_tokens, "min_tokens": min_tokens,
            "eval_prompts_held_out": list(EVAL_PROMPT_SETS)}
    folder = Path(cache_dir) if cache_dir else _default_cache() / _digest(want)
    if (folder / PROVENANCE).is_file():
        cached = load_pairs(folder)
        if {k: cached.provenance.get(k) for k in want} == want:
            return cached
    pairs: list[Pair] = []
    counts: dict[str, int] = {}
    held_out = eval_openings()
    for name in sources:
        got = cut_pairs(tokenizer, table[name](), name, prefix_tokens=prefix_tokens,
                        continuation_tokens=continuation_tokens, min_tokens=min_tokens, held_out=held_out)
        counts[name] = len(got)
        pairs += got
    if not pairs:
        raise DataError("the corpora gave no pairs")
    pre = _embed([p.prefix for p in pairs], encoder, batch_size, progress, "embedding prefixes")
    cont = _embed([p.continuation for p in pairs], encoder, batch_size, progress, "embedding continuations")
    provenance = {**want, "pairs": len(pairs), "per_source": counts,
                  "per_split": dict(Counter(p.split for p in pairs)), "dim": int(pre.shape[1]),
                  "digest": _digest([(p.prefix, p.continuation, p.source, p.split) for p in pairs])}
    out = PairSet(pairs, pre, cont, provenance)
    save_pairs(out, folder)
    return out


def _embed(texts: list[str], encoder: str, batch_size: int, progress: bool, what: str) -> torch.Tensor:
    from steerlab.scoring.encoders import load_encoder

    model = load_encoder(encoder)
    chunks = []
    step = batch_size * 16
    with maybe_bar(progress, len(texts), what) as advance:
        for start in range(0, len(texts), step):
            part = texts[start:start + step]
            chunks.append(np.asarray(model.encode(part, batch_size=batch_size, normalize_embeddings=True,
                                                  show_progress_bar=False), dtype=np.float32))
            advance(len(part))
    return torch.from_numpy(np.concatenate(chunks))  # (N, D)


def save_pairs(data: PairSet, folder: str | Path) -> Path:
    """Write a pair cache folder (replacing an earlier cache of pairs there, nothing else)."""
    target = Path(folder)
    with atomic_dir(target, {PAIRS, EMBEDDINGS, PROVENANCE}, overwrite=True, what="DGLM pair cache") as tmp:
        with open(tmp / PAIRS, "w", encoding="utf-8") as f:
            for p in data.pairs:
                f.write(json.dumps({"prefix": p.prefix, "continuation": p.continuation, "source": p.source,
                                    "split": p.split}) + "\n")
        save_file({"prefix": data.prefix.half().contiguous(), "continuation": data.continuation.half().contiguous()},
                  str(tmp / EMBEDDINGS))
        (tmp / PROVENANCE).write_text(json.dumps(data.provenance, indent=1) + "\n")
    return target


def load_pairs(folder: str | Path) -> PairSet:
    """Read a pair cache folder, checking that its parts agree."""
    root = Path(folder)
    try:
        provenance = json.loads((root / PROVENANCE).read_text())
        tensors = load_file(str(root / EMBEDDINGS))
        with open(root / PAIRS, encoding="utf-8") as f:
            pairs = [Pair(**json.loads(line)) for line in f if line.strip()]
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{root} is not a DGLM pair cache: {exc}") from None
    pre, cont = tensors.get("prefix"), tensors.get("continuation")
    if pre is None or cont is None or pre.shape != cont.shape or pre.shape[0] != len(pairs):
        raise DataError(f"{root}: embeddings do not match the {len(pairs)} pairs")
    return PairSet(pairs, pre.float(), cont.float(), provenance)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _default_cache() -> Path:
    import os

    return Path(os.environ.get("STEERLAB_CACHE", Path.home() / ".cache" / "steerlab")) / "dglm" / "pairs"
