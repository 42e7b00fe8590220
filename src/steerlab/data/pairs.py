"""Contrastive data: paired jsonl (``{"positive": ..., "negative": ...}``) or labelled text
(``{"text": ..., "label": ...}``), plus the attribute sets that ship with steerlab.

Labels accepted for the positive class: 1, true, "positive", "pos", "1"; negative: 0, false,
"negative", "neg", "0". Errors name the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from steerlab.errors import DataError

_POS = {"1", "true", "positive", "pos"}
_NEG = {"0", "false", "negative", "neg"}


@dataclass
class ContrastSet:
    """Texts with and without an attribute; ``paired`` when positive[i] contrasts negative[i]."""

    positive: list[str]
    negative: list[str]
    paired: bool
    name: str = "custom"
    source: str = "in-memory"

    def __post_init__(self) -> None:
        if not self.positive or not self.negative:
            raise DataError(f"{self.source}: need at least one positive and one negative text "
                            f"(got {len(self.positive)} / {len(self.negative)})")

    def split(self, holdout: float = 0.2) -> tuple[ContrastSet, ContrastSet]:
        """Deterministic (train, held-out) split keeping pairs together."""
        def cut(xs: list[str]) -> int:
            return max(1, int(round(len(xs) * (1 - holdout))))
        cp, cn = cut(self.positive), cut(self.negative)
        if self.paired:
            cn = cp
        train = ContrastSet(self.positive[:cp], self.negative[:cn], self.paired, self.name, self.source)
        test = ContrastSet(self.positive[cp:] or self.positive[-1:], self.negative[cn:] or self.negative[-1:],
                           self.paired, self.name, self.source + " (held out)")
        return train, test


BUILTIN = {"sentiment": "sentiment_pairs.jsonl", "formality": "formality_pairs.jsonl"}


def builtin_path(name: str) -> Path:
    """Path of a shipped data file."""
    return Path(str(resources.files("steerlab.data") / "sets" / name))


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of a user's data file, or one clear :class:`DataError` (missing, a folder,
    unreadable, not UTF-8)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such {what}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read it ({e.strerror or e})") from None


def json_line(line: str, where: str) -> Any:
    """One jsonl line parsed strictly: NaN / Infinity (which Python's json accepts) are refused."""
    def refuse(token: str) -> Any:
        raise DataError(f"{where}: {token} is not valid JSON")

    try:
        return json.loads(line, parse_constant=refuse)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply") from None


def load_contrast(path: str | Path, name: str | None = None) -> ContrastSet:
    """Read a paired or labelled jsonl file."""
    p = Path(path)
    rows = [(f"{p}:{lineno}", json_line(line, f"{p}:{lineno}"))
            for lineno, line in enumerate(read_text(p).splitlines(), start=1) if line.strip()]
    return contrast_from_rows(rows, name=name or p.stem, source=str(p))


def contrast_from_rows(rows: Sequence[tuple[str, Any]], *, name: str, source: str) -> ContrastSet:
    """Contrastive data from jsonl-shaped rows, each ``(where, row)``: every row either paired
    (``{"positive", "negative"}``) or labelled (``{"text", "label"}``), one form throughout."""
    pos: list[str] = []
    neg: list[str] = []
    kinds = set()
    for where, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{where}: each line must be a JSON object")
        if "positive" in row or "negative" in row:
            kinds.add("paired")
            a, b = row.get("positive"), row.get("negative")
            if not isinstance(a, str) or not isinstance(b, str) or not a.strip() or not b.strip():
                raise DataError(f"{where}: 'positive' and 'negative' must be non-empty strings")
            pos.append(a)
            neg.append(b)
        elif "text" in row and "label" in row:
            kinds.add("labelled")
            text, raw_label = row["text"], row["label"]
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: 'text' must be a non-empty string")
            if not isinstance(raw_label, (str, int, bool)):
                raise DataError(f"{where}: unknown label {raw_label!r} (use positive/negative or 1/0)")
            label = str(raw_label).strip().lower()
            if label in _POS:
                pos.append(text)
            elif label in _NEG:
                neg.append(text)
            else:
                raise DataError(f"{where}: unknown label {row['label']!r} (use positive/negative or 1/0)")
        else:
            raise DataError(f"{where}: expected keys positive/negative or text/label, got {sorted(row)}")
    if len(kinds) > 1:
        raise DataError(f"{source}: mixes paired and labelled lines; use one form per file")
    if not pos and not neg:
        raise DataError(f"{source}: is empty")
    return ContrastSet(pos, neg, paired=kinds == {"paired"}, name=name, source=source)


def as_contrast(data: Any) -> ContrastSet:
    """Accept a ContrastSet, a built-in name, a jsonl path, or a list of (positive, negative) pairs."""
    if isinstance(data, ContrastSet):
        return data
    if isinstance(data, str) and data in BUILTIN:
        cs = load_contrast(builtin_path(BUILTIN[data]), name=data)
        cs.source = f"steerlab:{data}"
        return cs
    if isinstance(data, str):
        from steerlab.data.corpus_sets import CORPUS_SETS

        if data in CORPUS_SETS:
            return CORPUS_SETS[data]()
    if isinstance(data, (str, Path)):
        return load_contrast(data)
    if isinstance(data, Sequence) and data and all(isinstance(x, (tuple, list)) and len(x) == 2 for x in data):
        return ContrastSet([str(a) for a, _ in data], [str(b) for _, b in data], paired=True)
    if isinstance(data, Sequence) and data and all(isinstance(x, Mapping) for x in data):
        return contrast_from_rows([(f"row {i}", dict(x)) for i, x in enumerate(data)], name="contrast",
                                  source="rows")
    raise DataError(f"cannot read contrastive data from {type(data).__name__}; pass a jsonl path, "
                    f"a built-in name ({', '.join(BUILTIN)}, or a corpus set), a list of (positive, negative) "
                    "pairs or a list of jsonl-shaped rows ({'positive', 'negative'} or {'text', 'label'})")


def text_hashes(texts: Sequence[str]) -> list[str]:
    """Short sha1 digests of training texts, stored in provenance so evaluation can prove that no
    scoring prompt was used to build an artifact (without storing the texts themselves)."""
    import hashlib

    return sorted({hashlib.sha1(t.strip().encode()).hexdigest()[:12] for t in texts})


def load_prompts(name_or_path: str = "neutral") -> list[str]:
    """Prompt openings: a shipped set (``neutral``) or a text file with one prompt per line."""
    p = builtin_path(f"prompts_{name_or_path}.txt")
    if not p.is_file():
        p = Path(name_or_path)
    if not p.is_file():
        raise DataError(f"no prompt set or file called {name_or_path!r}")
    prompts = [ln.strip() for ln in read_text(p).splitlines() if ln.strip()]
    if not prompts:
        raise DataError(f"{p} has no prompts")
    return prompts
