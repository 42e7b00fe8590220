"""The value model (SteerLM step 1): (prompt, response) → a score per attribute of the schema.

One ridge-regression head per attribute on frozen sentence-encoder features (the packaged
all-MiniLM-L6-v2). Two feature sets:

* ``response``: the response embedding e_r (D) and log(1 + words) — for attributes of the text
  itself (toxicity, sentiment, verbosity, humour);
* ``pair``: e_p, e_r, e_p ⊙ e_r and log(1 + words) — for ``quality``, which asks whether the response
  fits the prompt (the product term makes a learnt, weighted cosine).

Features are standardised per head; rare label levels (jokes, toxic text) are up-weighted by the
square root of their inverse frequency (``balance="sqrt"``): full level balancing (``"levels"``)
gave a toxic level 20× the weight of a clean one and pushed benign chatbot replies to toxicity
1–2, while without any weighting the 88 % clean rows dominate the toxicity fit. Predictions are clipped to the
attribute's range. The model saves as a directory of JSON (schema, heads, held-out metrics,
provenance) + safetensors, never pickle.

SteerLM's simpler inference-time variant is :meth:`ValueModel.condition_on_input`: predict the attributes of
the user's *input* and re-weight them by user weights to choose the attribute values to generate with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from steerlab.core.artifact import resolve_artifact_path
from steerlab.core.atomic import atomic_dir
from steerlab.core.validate import check_tensor_values
from steerlab.errors import ArtifactError, DataError, SteerlabError
from steerlab.methods.steerlm.schema import DEFAULT_SCHEMA, AttributeSchema
from steerlab.methods.steerlm.value_data import LabelledText
from steerlab.scoring.linear import LinearHead

CONFIG = "value_config.json"
WEIGHTS = "value_weights.safetensors"
PAIR_ATTRIBUTES = ("quality",)


@dataclass
class Head:
    """One attribute's predictor: a standardised linear head on a feature set (``response``
    embeddings, or the ``pair`` features of prompt and response)."""

    feature_set: str
    linear: LinearHead

    def __call__(self, x: np.ndarray) -> np.ndarray:  # x: (N, D) -> (N,)
        return self.linear(x)


@dataclass
class ValueModel:
    """Attribute predictor for one schema; see the module docs."""

    schema: AttributeSchema
    heads: dict[str, Head]
    encoder: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # per attribute: floats and by_source
    provenance: dict[str, Any] = field(default_factory=dict)

    def features(self, prompts: Sequence[str], responses: Sequence[str]) -> dict[str, np.ndarray]:
        return featurize(prompts, responses, self.encoder, {h.feature_set for h in self.heads.values()})

    def predict(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """(N, A) scores in schema order, clipped to each attribute's range."""
        if len(prompts) != len(responses):
            raise SteerlabError(f"{len(prompts)} prompts for {len(responses)} responses")
        if not responses:
            return np.zeros((0, len(self.schema.names)))
        feats = self.features(prompts, responses)
        cols = []
        for attr in self.schema.attributes:
            head = self.heads[attr.name]
            cols.append(np.clip(head(feats[head.feature_set]), attr.low, attr.high))
        return np.stack(cols, axis=1)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[dict[str, float]]:
        """One ``{attribute: score}`` dict per response."""
        pred = self.predict(prompts, responses)
        return [dict(zip(self.schema.names, (float(v) for v in row))) for row in pred]

    def levels(self, prompts: Sequence[str], responses: Sequence[str]) -> list[dict[str, int]]:
        """Scores rounded to the schema's integer levels (what annotation writes)."""
        return [{k: int(round(v)) for k, v in row.items()} for row in self.score(prompts, responses)]

    def condition_on_input(self, prompt: str, weights: Mapping[str, float] | None = None) -> dict[str, int]:
        """SteerLM's inference-time variant: the input's own predicted attributes × user ``weights``, as levels.

        ``quality`` (which needs a prompt/response pair) keeps the schema default.
        """
        weights = dict(weights or {})
        for name in weights:
            self.schema[name]  # unknown attribute -> did-you-mean error
        pred = self.score([""], [prompt])[0]
        out = {}
        for attr in self.schema.attributes:
            if attr.name in PAIR_ATTRIBUTES:
                out[attr.name] = attr.default
                continue
            v = pred[attr.name] * float(weights.get(attr.name, 1.0))
            out[attr.name] = int(min(attr.high, max(attr.low, round(v))))
        return out

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the value model folder atomically; an earlier value model there is replaced only
        with ``overwrite=True``, anything else never."""
        cfg = {"kind": "steerlab-value-model", "schema": self.schema.to_json(), "schema_digest": self.schema.digest(),
               "encoder": self.encoder, "heads": {k: {"feature_set": h.feature_set,
                                                      "intercept": h.linear.intercept}
                                                  for k, h in self.heads.items()},
               "metrics": self.metrics, "provenance": self.provenance}
        tensors = {}
        for k, h in self.heads.items():
            tensors.update(h.linear.tensors(f"{k}.", std_name="scale"))
        target = Path(path)
        with atomic_dir(target, {CONFIG, WEIGHTS}, overwrite=overwrite, what="value model") as tmp:
            (tmp / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")
            save_file(tensors, str(tmp / WEIGHTS))
        return target

    @classmethod
    def load(cls, path: str | Path, *, encoder: str | None = None) -> ValueModel:
        """Read a value model folder; its encoder must be a packaged one unless ``encoder`` overrides it."""
        from steerlab.scoring.encoders import packaged_encoder

        p = resolve_artifact_path(path)  # a folder, or a shipped value model by name
        if not (p / CONFIG).is_file() or not (p / WEIGHTS).is_file():
            raise ArtifactError(f"{p} is not a value model directory ({CONFIG} + {WEIGHTS})")
        try:
            cfg = json.loads((p / CONFIG).read_text(encoding="utf-8"))
            tensors = load_file(str(p / WEIGHTS))
            schema = AttributeSchema.from_json(cfg["schema"])
            for key, t in tensors.items():
                check_tensor_values(f"{p}: {key}", t)
            heads = {k: Head(v["feature_set"], LinearHead.from_tensors(tensors, f"{k}.", v["intercept"], "scale"))
                     for k, v in cfg["heads"].items()}
            for k, h in heads.items():
                if h.feature_set not in ("response", "pair"):
                    raise ValueError(f"head {k!r} has unknown feature set {h.feature_set!r}")
        except SteerlabError as e:
            raise ArtifactError(f"{p}: malformed value model ({e})") from None
        except (ValueError, KeyError, OSError, TypeError, AttributeError, SafetensorError) as e:
            raise ArtifactError(f"{p}: malformed value model ({type(e).__name__}: {e})") from None
        if cfg.get("schema_digest") != schema.digest() or set(heads) != set(schema.names):
            raise ArtifactError(f"{p}: heads or schema digest do not match the saved schema")
        return cls(schema, heads, packaged_encoder(cfg.get("encoder"), str(p), encoder), cfg.get("metrics", {}),
                   cfg.get("provenance", {}))


def featurize(prompts: Sequence[str], responses: Sequence[str], encoder: str,
              sets: set[str]) -> dict[str, np.ndarray]:
    """Feature matrices per feature set; each distinct text is encoded once."""
    from steerlab.scoring.encoders import encode

    texts = sorted({*responses, *(prompts if "pair" in sets else [])})
    emb = dict(zip(texts, encode(texts, encoder)))  # text -> (D,)
    e_r = np.stack([emb[r] for r in responses])  # (N, D)
    length = np.array([[math.log1p(len(r.split()))] for r in responses], dtype=np.float32)  # (N, 1)
    out = {"response": np.concatenate([e_r, length], axis=1)}
    if "pair" in sets:
        e_p = np.stack([emb[p] for p in prompts])
        out["pair"] = np.concatenate([e_p, e_r, e_p * e_r, length], axis=1)
    return out


def _split(rows: list[LabelledText], heldout: float, seed: int) -> np.ndarray:
    """Boolean test mask; rows sharing a prompt (or, without one, a response) stay together."""
    rng = np.random.default_rng(seed)
    keys = sorted({r.prompt or r.response for r in rows})
    test_keys = set(rng.permutation(len(keys))[: int(round(heldout * len(keys)))].tolist())
    index = {k: i for i, k in enumerate(keys)}
    return np.array([index[r.prompt or r.response] in test_keys for r in rows])


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr

    levels = sorted(set(y.tolist()))
    rho = spearmanr(y, pred).statistic if len(levels) > 1 else float("nan")
    out = {"spearman": float(rho), "mae": float(np.abs(y - pred).mean()),
           "accuracy": float((np.round(pred) == np.round(y)).mean()), "n_test": int(len(y))}
    if len(levels) == 2:  # a two-level source (e.g. joke / not): ranking quality as ROC AUC
        from sklearn.metrics import roc_auc_score

        out["auc"] = float(roc_auc_score(y == levels[1], pred))
    return out


def _by_source(sources: Sequence[str], y: np.ndarray, pred: np.ndarray, min_rows: int = 20) -> dict[str, Any]:
    """Held-out metrics per label source (``"mallard"`` from ``"mallard:joke"``) with ≥ ``min_rows`` rows.

    A head can look good overall by telling sources apart (jokes vs tweets); these show how it
    ranks *within* a source, e.g. funnier vs flatter Mallard lines.
    """
    keys = np.array([s.split(":")[0] or "given" for s in sources])
    out = {}
    for key in sorted(set(keys.tolist())):
        m = keys == key
        if m.sum() >= min_rows and len(set(y[m].tolist())) > 1:
            out[key] = _metrics(y[m], pred[m])
    return out


def train_value_model(rows: Sequence[LabelledText] | None = None, *, schema: AttributeSchema = DEFAULT_SCHEMA,
                      encoder: str | None = None, heldout: float = 0.2, alphas: Sequence[float] = (1.0, 10.0, 100.0,
                      1e3, 1e4, 1e5), balance: str = "sqrt", seed: int = 0, progress: bool = True) -> ValueModel:
    """Fit one head per schema attribute on ``rows`` (default: :func:`value_training_data`).

    Held-out rows (``heldout`` of the prompts) give per-attribute Spearman ρ, MAE and accuracy of
    the rounded prediction, stored in ``metrics``; the saved heads are the ones fitted without them.
    ``balance`` weights each training row by (N / (levels × count of its level)) ** p with p = 1
    (``"levels"``), 0.5 (``"sqrt"``) or 0 (``"none"``).
    """
    from sklearn.linear_model import RidgeCV

    from steerlab.methods.steerlm.value_data import value_training_data
    from steerlab.progress import maybe_bar
    from steerlab.scoring.encoders import DEFAULT_ENCODER

    power = {"levels": 1.0, "sqrt": 0.5, "none": 0.0}.get(balance)
    if power is None:
        raise SteerlabError(f"balance must be 'levels', 'sqrt' or 'none', got {balance!r}")
    encoder = encoder or DEFAULT_ENCODER
    rows = list(rows) if rows is not None else value_training_data(seed=seed)
    if not rows:
        raise DataError("no value-model training rows")
    test = _split(rows, heldout, seed)
    sets = {"pair" if a in PAIR_ATTRIBUTES else "response" for a in schema.names}
    feats = featurize([r.prompt for r in rows], [r.response for r in rows], encoder, sets)
    heads, metrics = {}, {}
    with maybe_bar(progress, len(schema.names), "value model heads") as advance:
        for attr in schema.attributes:
            fs = "pair" if attr.name in PAIR_ATTRIBUTES else "response"
            have = np.array([attr.name in r.labels for r in rows])
            if not have.any():
                raise DataError(f"no training labels for attribute {attr.name!r}")
            y = np.array([r.labels.get(attr.name, np.nan) for r in rows], dtype=np.float64)
            tr, te = have & ~test, have & test
            x = feats[fs]
            levels, counts = np.unique(np.round(y[tr]), return_counts=True)
            w_of = {lv: (len(y[tr]) / (len(levels) * c)) ** power for lv, c in zip(levels, counts)}
            linear, model = LinearHead.fit(RidgeCV(alphas=list(alphas)), x[tr], y[tr],
                                           sample_weight=np.array([w_of[v] for v in np.round(y[tr])]))
            head = Head(fs, linear)
            heads[attr.name] = head
            pred = np.clip(head(x[te]), attr.low, attr.high) if te.any() else np.zeros(0)
            metrics[attr.name] = {**(_metrics(y[te], pred) if te.any() else {}), "n_train": int(tr.sum()),
                                  "alpha": float(model.alpha_),
                                  "label_counts": {str(int(lv)): int(c) for lv, c in zip(levels, counts)},
                                  "by_source": _by_source([r.source for r, t in zip(rows, te) if t], y[te], pred)}
            advance(1, attr.name)
    sources: dict[str, int] = {}
    for r in rows:
        key = r.source.split(":")[0] or "given"
        sources[key] = sources.get(key, 0) + 1
    return ValueModel(schema, heads, encoder, metrics, {"rows": len(rows), "sources": sources, "seed": seed,
                                                        "heldout": heldout, "balance": balance})
