"""SteerLM training records and the SteerLM paper's jsonl formats.

An :class:`Example` is one (prompt, response, attribute values) triple. On disk we write NeMo's
SteerLM layout so files interoperate with that recipe::

    {"system": "", "mask": "User", "type": "VALUE_TO_TEXT",
     "conversations": [{"from": "User", "value": PROMPT, "label": null},
                       {"from": "Assistant", "value": RESPONSE, "label": "quality:4,toxicity:0,..."}]}

``TEXT_TO_VALUE`` files hold the same records with ``type`` set accordingly (the label is what a
value model predicts from the text); ``VALUE_TO_TEXT`` files are what attribute-conditioned SFT
trains on (the label conditions the response).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerlab.core.atomic import atomic_file
from steerlab.core.validate import finite
from steerlab.data.pairs import json_line, read_text
from steerlab.errors import DataError, SteerlabError
from steerlab.methods.steerlm.schema import AttributeSchema

RECORD_TYPES = ("TEXT_TO_VALUE", "VALUE_TO_TEXT")


@dataclass
class Example:
    """One conversation turn with its attribute values (every attribute of the schema)."""

    prompt: str
    response: str
    attributes: dict[str, int]
    source: str = ""
    scores: dict[str, float] = field(default_factory=dict)  # the value model's raw outputs, if any
    given: dict[str, int] = field(default_factory=dict)  # labels a person gave (kept over the value model's)


def to_record(ex: Example, schema: AttributeSchema, kind: str) -> dict[str, Any]:
    if kind not in RECORD_TYPES:
        raise DataError(f"record type must be one of {RECORD_TYPES}, got {kind!r}")
    rec: dict[str, Any] = {
        "system": "", "mask": "User", "type": kind,
        "conversations": [{"from": "User", "value": ex.prompt, "label": None},
                          {"from": "Assistant", "value": ex.response, "label": schema.format(ex.attributes)}],
    }
    if ex.source:
        rec["source"] = ex.source
    if ex.scores:
        rec["scores"] = {k: round(v, 4) for k, v in ex.scores.items()}
    if ex.given:
        rec["given"] = dict(ex.given)
    return rec


def write_records(path: str | Path, examples: Iterable[Example], schema: AttributeSchema, kind: str, *,
                  overwrite: bool = False) -> int:
    """Write ``examples`` as jsonl (atomically); returns the count. An existing file is replaced
    only with ``overwrite=True``."""
    lines = [json.dumps(to_record(ex, schema, kind), ensure_ascii=False) for ex in examples]
    with atomic_file(Path(path), overwrite=overwrite, what="records file") as tmp:
        tmp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return len(lines)


def read_records(path: str | Path, schema: AttributeSchema) -> list[Example]:
    """Read a TEXT_TO_VALUE / VALUE_TO_TEXT jsonl file (ours or NeMo's, first User/Assistant pair)."""
    p = Path(path)
    out = []
    for i, line in enumerate(read_text(p, "records file").splitlines(), 1):
        if not line.strip():
            continue
        rec = json_line(line, f"{p}:{i}")
        try:
            out.append(_example(rec, schema))
        except SteerlabError as e:
            raise DataError(f"{p}:{i}: {e}") from None
        except (KeyError, StopIteration, TypeError, AttributeError, ValueError) as e:
            raise DataError(f"{p}:{i}: not a SteerLM record ({type(e).__name__}: {e})") from None
    if not out:
        raise DataError(f"{p} holds no records")
    return out


def _example(rec: Any, schema: AttributeSchema) -> Example:
    """One record (ours or NeMo's: the first User turn and the first labelled Assistant turn)."""
    turns = rec["conversations"]
    user = next(t for t in turns if t["from"] == "User")
    asst = next(t for t in turns if t["from"] == "Assistant" and t.get("label"))
    prompt, response, label = user["value"], asst["value"], asst["label"]
    if not all(isinstance(x, str) for x in (prompt, response, label)):
        raise DataError("turn values and the label must be strings")
    attrs = schema.parse(label, complete=False)
    given = rec.get("given") or {}
    if not isinstance(given, dict):
        raise DataError(f"'given' must map attribute names to levels, got {given!r}")
    given = {k: v for k, v in schema.resolve(given).items() if k in given}  # validates names and ranges
    scores = rec.get("scores") or {}
    if not isinstance(scores, dict):
        raise DataError(f"'scores' must map attribute names to numbers, got {scores!r}")
    source = rec.get("source", "")
    if not isinstance(source, str):
        raise DataError(f"'source' must be a string, got {source!r}")
    return Example(prompt, response, schema.resolve(attrs), source,
                   {k: finite(f"scores.{k}", v) for k, v in scores.items()}, given)


def as_examples(data: Any, schema: AttributeSchema) -> list[Example]:
    """Examples from a records path or a sequence of :class:`Example` (validated against ``schema``)."""
    if isinstance(data, (str, Path)):
        return read_records(data, schema)
    if isinstance(data, Sequence) and all(isinstance(x, Example) for x in data):
        if not data:
            raise DataError("no training examples")
        return [Example(x.prompt, x.response, schema.resolve(x.attributes), x.source, x.scores, x.given)
                for x in data]
    raise DataError(f"cannot read SteerLM training data from {type(data).__name__}")


def contrast_subset(examples: Sequence[Example], attributes: Sequence[str], min_gap: int = 2) -> list[Example]:
    """Contrast pairs: per prompt and attribute, the lowest- and highest-labelled responses if ``min_gap`` apart.

    Why: with many responses per prompt whose labels differ by a level or less, the attribute
    string explains almost none of the response loss and attribute-conditioned SFT learns the
    response style while ignoring the digits (measured: true vs shuffled label loss equal to 1e-4).
    Pairs that share a prompt and differ by ``min_gap`` levels on one attribute make the digits the
    only thing that tells the two responses apart. Examples keep all their labels; an example in
    several pairs is kept once. Raw ``scores`` break ties between equal levels when present.
    """
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        groups.setdefault(ex.prompt, []).append(ex)
    picked: dict[int, Example] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        for name in attributes:
            key = [(ex.attributes[name], ex.scores.get(name, 0.0)) for ex in group]
            lo = min(range(len(group)), key=key.__getitem__)
            hi = max(range(len(group)), key=key.__getitem__)
            if group[hi].attributes[name] - group[lo].attributes[name] >= min_gap:
                picked.setdefault(id(group[lo]), group[lo])
                picked.setdefault(id(group[hi]), group[hi])
    return list(picked.values())
