"""SteerLM step 2 (annotate) and step 4 (bootstrap).

``annotate`` builds the SFT corpus SteerLM describes — "annotate other data with the predictor":
the packaged chatterbot conversations (a person's reply to each line) plus responses sampled from
the base model for the same lines, each labelled by the value model. Optional steering variants
(e.g. a sentiment vector at ±4) are cycled over the sampled responses to widen the spread of
attribute values the SFT sees; the labels are always the value model's measurement, never the
variant's intent. Cleaning (the SteerLM paper's data-cleaning step): a sampled response cut off by the
token limit is trimmed back to its last complete sentence (or dropped when it has none), so the
SFT never learns to stop mid-sentence; empty responses are dropped. With ``terse=True`` the first
sentence of every multi-sentence sample is kept as a record of its own — the same content said
briefly — which gives the verbosity knob pairs that differ in length alone.

With ``humor_corpus=True`` the replies of the Mallard humour corpus to its everyday setups join
the data (397 replies to 164 setups, plain and funny replies to the same setup): their humour
level is the one a person's rating gives (:func:`~steerlab.methods.steerlm.value_data.humor_level`),
kept in the record's ``given`` labels; the value model labels their other attributes.

With ``mismatched=N`` each prompt also gets N replies a person wrote in *other* chatterbot
conversations — alternately from another topic (quality 0) and from the same topic (quality 2),
the construction the value model's quality labels come from (``value_data``). Sampled responses
are almost always on topic, so without them no record has quality 0 and the bottom of the quality
knob is never trained.
:func:`relabel` re-scores existing records with a newer value model and keeps ``given`` labels.

``bootstrap`` samples several responses per prompt from the SteerLM model conditioned on top
quality, re-labels them with the value model's *measured* values and fine-tunes again.
Chatterbot lines are split by a hash of the text: one line in five is held out for evaluation.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from steerlab.errors import DataError
from steerlab.methods.steerlm.artifact import SteerLMAdapter
from steerlab.methods.steerlm.records import Example
from steerlab.methods.steerlm.schema import AttributeSchema
from steerlab.methods.steerlm.value_model import ValueModel
from steerlab.models.loading import LoadedModel

if TYPE_CHECKING:
    from steerlab.generation.generate import TextEngine


def is_heldout(prompt: str) -> bool:
    """Whether a chatterbot line belongs to the evaluation fifth (stable across runs and machines)."""
    return hashlib.sha1(prompt.encode("utf-8")).digest()[0] % 5 == 0


_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s|$)")


def sentences_end(text: str) -> list[int]:
    """Character offsets just after each sentence end in ``text`` (., !, ?, … plus closing quotes)."""
    return [m.end() for m in _SENTENCE_END.finditer(text)]


def clean_response(text: str) -> str | None:
    """``text`` trimmed to its last complete sentence; None when no sentence is complete."""
    text = text.strip()
    ends = sentences_end(text)
    if not ends:
        return None
    return text[: ends[-1]].strip()


def first_sentence(text: str) -> str | None:
    """The first sentence of ``text`` when it has more than one, else None."""
    ends = sentences_end(text)
    return text[: ends[0]].strip() if len(ends) > 1 else None


def chat_prompts(split: str = "train", *, max_per_topic: int = 40, seed: int = 0) -> list[str]:
    """Distinct chatterbot lines for ``split`` (``train`` or ``eval``), at most ``max_per_topic`` per topic."""
    from steerlab.data.corpora import chatterbot

    if split not in ("train", "eval"):
        raise DataError(f"split must be 'train' or 'eval', got {split!r}")
    by_topic: dict[str, list[str]] = {}
    for t in chatterbot():
        if is_heldout(t.prompt) == (split == "eval") and t.prompt not in by_topic.setdefault(t.topic, []):
            by_topic[t.topic].append(t.prompt)
    rng = random.Random(seed)
    out = []
    for _topic, lines in sorted(by_topic.items()):
        rng.shuffle(lines)
        out += lines[:max_per_topic]
    return out


def annotate(
    lm: LoadedModel,
    value_model: ValueModel,
    *,
    prompts: Sequence[str] | None = None,
    samples: int = 2,
    include_human: bool = True,
    variants: Sequence[Any] = (None,),
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
    terse: bool = True,
    humor_corpus: bool = False,
    mismatched: int = 2,
    seed: int = 0,
    batch_size: int | None = None,
    chat: bool | None = None,
    progress: bool = True,
    engine: TextEngine | None = None,
) -> tuple[list[Example], dict[str, Any]]:
    """Labelled examples and a summary (counts, dropped records, label histograms).

    ``chat`` (default: whether the tokenizer has a chat template) samples responses as assistant turns.
    ``engine`` samples instead of steerlab's own engine on ``lm`` (vLLM: the bulk of the work).
    """
    from steerlab.data.corpora import chatterbot
    from steerlab.generation.generate import generate

    prompts = list(prompts) if prompts is not None else chat_prompts("train")
    if not prompts:
        raise DataError("no prompts to annotate")
    pairs: list[tuple[str, str, str]] = []  # (prompt, response, source)
    if include_human:
        wanted = set(prompts)
        seen = set()
        for t in chatterbot():
            if t.prompt in wanted and (t.prompt, t.reply) not in seen:
                seen.add((t.prompt, t.reply))
                pairs.append((t.prompt, t.reply, f"chatterbot:{t.topic}"))
    rows = [p for p in prompts for _ in range(samples)]
    steering = [variants[i % len(variants)] for i in range(len(rows))]
    if rows:
        run = engine.generate if engine is not None else functools.partial(generate, lm)
        outs = run(rows, steering=steering, max_new_tokens=max_new_tokens, temperature=temperature,
                   top_p=top_p, seed=seed, batch_size=batch_size, progress=progress,
                   chat=bool(getattr(lm.tokenizer, "chat_template", None)) if chat is None else chat)
    dropped_truncated = 0
    for i, (p, o) in enumerate(zip(rows, outs)):
        src = f"{lm.name}:sample:variant{i % len(variants)}"
        text = clean_response(o)
        if text is None:
            dropped_truncated += 1
            continue
        pairs.append((p, text, src))
        short = first_sentence(text) if terse else None
        if short:
            pairs.append((p, short, src + ":terse"))
    given: list[dict[str, int]] = [{} for _ in pairs]
    if humor_corpus:
        extra, extra_given = humor_corpus_pairs()
        pairs += extra
        given += extra_given
    if mismatched:
        extra, extra_given = mismatched_pairs(prompts, per_prompt=mismatched, seed=seed)
        pairs += extra
        given += extra_given
    examples, summary = label(value_model, pairs, given)
    return examples, {**summary, "dropped_truncated": dropped_truncated}


def label(value_model: ValueModel, pairs: Sequence[tuple[str, str, str]],
          given: Sequence[Mapping[str, int]] | None = None) -> tuple[list[Example], dict[str, Any]]:
    """Score (prompt, response, source) triples; drop empty responses; summarise the labels.

    ``given`` (one mapping per pair) holds labels a person gave; they replace the value model's.
    """
    if given is not None and len(given) != len(pairs):
        raise DataError(f"{len(given)} given-label sets for {len(pairs)} pairs")
    keep = [i for i, (_, r, _) in enumerate(pairs) if r.strip()]
    kept = [pairs[i] for i in keep]
    scores = value_model.score([p for p, _, _ in kept], [r for _, r, _ in kept]) if kept else []
    examples = []
    for i, (p, r, s), sc in zip(keep, kept, scores):
        fixed = {k: int(v) for k, v in (given[i] if given is not None else {}).items()}
        attrs = value_model.schema.resolve({**{k: int(round(v)) for k, v in sc.items()}, **fixed})
        examples.append(Example(p, r, attrs, s, sc, fixed))
    return examples, {"records": len(examples), "dropped_empty": len(pairs) - len(kept),
                      "histogram": histogram(examples, value_model.schema)}


def histogram(examples: Sequence[Example], schema: AttributeSchema) -> dict[str, dict[str, int]]:
    """Records per level of every attribute."""
    return {a.name: {str(v): sum(ex.attributes[a.name] == v for ex in examples) for v in range(a.low, a.high + 1)}
            for a in schema.attributes}


def relabel(value_model: ValueModel, examples: Sequence[Example]) -> tuple[list[Example], dict[str, Any]]:
    """Re-score ``examples`` with ``value_model`` (e.g. one trained on better labels), keeping ``given`` labels."""
    return label(value_model, [(ex.prompt, ex.response, ex.source) for ex in examples],
                 [ex.given for ex in examples])


def humor_corpus_pairs() -> tuple[list[tuple[str, str, str]], list[dict[str, int]]]:
    """(setup, reply, source) triples of the Mallard corpus and each reply's human humour level."""
    from steerlab.methods.steerlm.value_data import mallard_levels

    picked = [(r, level) for r, level in mallard_levels() if r.context]
    return ([(r.context, r.text, f"mallard:{r.kind}") for r, _ in picked],
            [{"humor": level} for _, level in picked])


def mismatched_pairs(prompts: Sequence[str], *, per_prompt: int = 2, seed: int = 0
                     ) -> tuple[list[tuple[str, str, str]], list[dict[str, int]]]:
    """(prompt, someone else's reply, source) triples and their quality: 0 (other topic) or 2 (same topic).

    Donor replies come only from the training fifth of chatterbot (never a held-out line's reply)
    and never a reply a person gave to the prompt itself (chatterbot repeats lines across
    conversations). The k-th reply of a prompt is from another topic
    for even k and from the same topic for odd k; a prompt that is not a chatterbot line (topic
    unknown) gets other-topic replies only, from any topic.
    """
    from steerlab.data.corpora import chatterbot

    if per_prompt < 0:
        raise DataError(f"mismatched replies per prompt must be ≥ 0, got {per_prompt}")
    donors = [t for t in chatterbot() if not is_heldout(t.prompt)]
    home: dict[str, tuple[str, int]] = {}
    own: dict[str, set[str]] = {}  # every reply a person gave to a line, in any conversation
    for t in chatterbot():
        home.setdefault(t.prompt, (t.topic, t.conversation))
        own.setdefault(t.prompt, set()).add(t.reply)
    rng = random.Random(seed)
    pairs: list[tuple[str, str, str]] = []
    given: list[dict[str, int]] = []
    for prompt in prompts:
        topic, conv = home.get(prompt, (None, -1))
        mine = own.get(prompt, set())
        same = [t for t in donors if t.topic == topic and t.conversation != conv and t.reply not in mine]
        other = [t for t in donors if t.topic != topic and t.reply not in mine]
        for k in range(per_prompt):
            pool, quality = (same, 2) if k % 2 and same else (other, 0)
            donor = rng.choice(pool)
            pairs.append((prompt, donor.reply, f"chatterbot:mismatched:{donor.topic}"))
            given.append({"quality": quality})
    return pairs, given


def humor_corpus_examples(schema: AttributeSchema) -> list[Example]:
    """The Mallard setups' replies as examples: humour from a person's rating, other knobs at defaults."""
    pairs, given = humor_corpus_pairs()
    return [Example(p, r, schema.resolve(g), s) for (p, r, s), g in zip(pairs, given)]


def bootstrap(
    lm: LoadedModel,
    adapter: SteerLMAdapter,
    value_model: ValueModel,
    *,
    prompts: Sequence[str] | None = None,
    samples: int = 3,
    previous: Sequence[Example] = (),
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
    focus: Sequence[str] = (),
    progress: bool = True,
    engine: TextEngine | None = None,
    **sft: Any,
) -> tuple[SteerLMAdapter, list[Example], dict[str, Any]]:
    """One bootstrap round: sample, re-label with measured values, fine-tune ``adapter`` further.

    Each sample asks for the top ``quality``; the other attributes are drawn uniformly from their
    ranges (seeded) so the re-labelled set covers every knob. ``focus`` names knobs to bootstrap
    harder: each prompt's samples walk through their whole range (see :func:`bootstrap_requests`),
    so a weak knob gets measured samples at every requested level of the same prompt.
    ``previous`` examples (round-1 data) are mixed in to keep what the first round learnt.
    ``engine`` samples instead of steerlab's own engine on ``lm`` (vLLM, with LoRA enabled);
    fine-tuning stays on ``lm``.
    """
    from steerlab.core.steerer import Steer
    from steerlab.generation.generate import generate
    from steerlab.methods.steerlm.sft import train_sft

    value_model.schema.check_same(adapter.schema, "the adapter")
    prompts = list(prompts) if prompts is not None else chat_prompts("train")
    requests = bootstrap_requests(adapter.schema, len(prompts), samples, focus=focus, seed=seed)
    rows = [p for p in prompts for _ in range(samples)]
    steering = [Steer(adapter, 1.0, {"attributes": req}) for req in requests]
    run = engine.generate if engine is not None else functools.partial(generate, lm)
    outs = run(rows, steering=steering, max_new_tokens=max_new_tokens, temperature=temperature,
               top_p=top_p, seed=seed, chat=adapter.chat, progress=progress)
    cleaned = [(p, clean_response(o)) for p, o in zip(rows, outs)]
    new, summary = label(value_model, [(p, o, "bootstrap") for p, o in cleaned if o])
    summary["dropped_truncated"] = sum(o is None for _, o in cleaned)
    data = [*previous, *new]
    improved = train_sft(lm, data, init=adapter, seed=seed, progress=progress, **sft)
    improved.meta.setdefault("provenance", {})["bootstrap"] = {"samples": len(rows), **summary,
                                                                "previous": len(previous), "focus": list(focus)}
    return improved, new, summary


def bootstrap_requests(schema: AttributeSchema, n_prompts: int, samples: int, *, focus: Sequence[str] = (),
                       seed: int = 0) -> list[dict[str, int]]:
    """The attribute values a bootstrap round asks for: ``samples`` requests per prompt, prompt-major.

    ``quality`` asks for its top value (the SteerLM paper's step 4); other knobs are drawn uniformly. A knob
    in ``focus`` instead walks its range from a random start per prompt (``low + (start + i) %
    size`` for sample ``i``), so with ``samples >= size`` every prompt is sampled at every level —
    what a knob the previous round barely learnt needs to get measured examples at its extremes.
    """
    for name in focus:
        schema[name]  # unknown attribute → clear error
    rng = random.Random(seed)
    out = []
    for _ in range(n_prompts):
        start = {name: rng.randrange(schema[name].high - schema[name].low + 1) for name in focus}
        for i in range(samples):
            req = {a.name: rng.randint(a.low, a.high) for a in schema.attributes}
            if "quality" in schema.names:
                req["quality"] = schema["quality"].high
            for name in focus:
                a = schema[name]
                req[name] = a.low + (start[name] + i) % (a.high - a.low + 1)
            out.append(req)
    return out
