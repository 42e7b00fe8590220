"""Build the data of a humour-focused SteerLM round (session 7) from earlier rounds' records.

Why: the GPU rounds (``steerlm_gpu.sh``) were labelled by a value model whose humour head knew 31
chatterbot jokes, so their humour labels were noise and the humour knob never rose. With humour
labels from the Mallard corpus and pyjokes (``steerlab steerlm train-value``), this script

1. re-scores the earlier records with the new value model (what ``steerlab steerlm relabel`` does),
2. adds the Mallard corpus's replies to its setups, humour level from a person's rating
   (``given`` labels; plain and funny replies to the same setup),
3. keeps humour contrast pairs (per prompt, the least and most humorous response, ≥ 2 levels
   apart) among responses with toxicity ≤ 1, so "funny" is not learnt as "profane",
4. mixes in contrast pairs of the other knobs and the rare toxic top levels, so a further round
   from an adapter keeps what it knew,
5. optionally (session 9, round r3q) starts from an earlier round's mix (``--base``) and adds
   quality contrast pairs among low-toxicity responses (``--quality``) and every record at the
   top toxicity level (``--top-toxic N``: N more copies of each), for a round that fixes a dip in
   those two knobs,
6. optionally (session 9, round r3m) adds replies a person wrote in other conversations to each
   chatterbot prompt of the mix (``--mismatched``: quality 0 from another topic, 2 from the same),
   so the bottom of the quality knob has records at all,
7. optionally (session 10, round r4t) appends an earlier mix's humour records once more
   (``--humor-again``), so a round that adds quality and toxicity data does not dilute humour,

and writes one VALUE_TO_TEXT file for ``steerlab steerlm sft --init ADAPTER``.

    python experiments/steerlm/steerlm_humor_round.py --value-model vm/ --records R/data/annotated.v2t.jsonl \\
        --records R/r2.samples.v2t.jsonl --out mix.v2t.jsonl
"""

from __future__ import annotations

import argparse
import collections
import random
from pathlib import Path

from steerlab.data.corpora import chatterbot
from steerlab.methods.steerlm import read_records
from steerlab.methods.steerlm.annotate import humor_corpus_pairs, label, mismatched_pairs, relabel
from steerlab.methods.steerlm.records import contrast_subset, write_records
from steerlab.methods.steerlm.value_model import ValueModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--value-model", type=Path, required=True)
    ap.add_argument("--records", type=Path, action="append", default=[], help="earlier rounds' records")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--others", type=int, default=500, help="contrast records of the other knobs")
    ap.add_argument("--toxic", type=int, default=150, help="records at toxicity ≥ 3")
    ap.add_argument("--max-toxicity", type=int, default=1, help="humour pairs only below this toxicity")
    ap.add_argument("--base", type=Path, help="an earlier mix, kept as is, instead of the Mallard + humour part")
    ap.add_argument("--quality", type=int, default=0, help="quality contrast records (toxicity ≤ --max-toxicity)")
    ap.add_argument("--top-toxic", type=int, default=0,
                    help="extra copies of every record at the top toxicity level (after the rest is mixed)")
    ap.add_argument("--mismatched", type=int, default=0,
                    help="replies from other conversations per prompt of the mix (quality 0 / 2)")
    ap.add_argument("--humor-again", type=Path,
                    help="an earlier humour mix whose Mallard replies and humour ≥ 3 records (toxicity ≤ "
                         "--max-toxicity) are appended once more, so a round that adds other data keeps humour")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.base is None and not args.records:
        ap.error("give --records (and optionally --base)")
    rng = random.Random(args.seed)
    vm = ValueModel.load(args.value_model)
    old = [ex for path in args.records for ex in read_records(path, vm.schema) if ex.response.strip()]
    examples, _ = relabel(vm, old) if old else ([], {})
    parts: dict[str, int] = {}
    if args.base is None:
        humor = contrast_subset([e for e in examples if e.attributes["toxicity"] <= args.max_toxicity], ["humor"], 2)
        mallard, _ = label(vm, *humor_corpus_pairs())
        mix = mallard + humor
        parts.update(Mallard=len(mallard), humour_contrast=len(humor))
    else:
        humor, mix = [], read_records(args.base, vm.schema)
        parts["base"] = len(mix)
    taken = {id(e) for e in humor}
    others = contrast_subset([e for e in examples if id(e) not in taken], ["toxicity", "sentiment", "verbosity"], 2)
    rng.shuffle(others)
    toxic = [e for e in examples if e.attributes["toxicity"] >= 3]
    mix += others[: args.others] + rng.sample(toxic, min(args.toxic, len(toxic)))
    parts.update(other_contrast=min(args.others, len(others)), toxic=min(args.toxic, len(toxic)))
    # Quality pairs are drawn by prompt, so a pair is never cut in half.
    quality = contrast_subset([e for e in examples if e.attributes["toxicity"] <= args.max_toxicity], ["quality"], 2)
    by_prompt: dict[str, list] = {}
    for e in quality:
        by_prompt.setdefault(e.prompt, []).append(e)
    prompts = sorted(by_prompt)
    rng.shuffle(prompts)
    picked: list = []
    for prompt in prompts:
        if len(picked) >= args.quality:
            break
        picked += [e for e in by_prompt[prompt] if (e.prompt, e.response) not in {(m.prompt, m.response) for m in mix}]
    mix += picked
    parts["quality_contrast"] = len(picked)
    if args.mismatched:
        chatterbot_lines = {t.prompt for t in chatterbot()}
        lines = sorted({e.prompt for e in mix if e.prompt in chatterbot_lines})
        mism, _ = label(vm, *mismatched_pairs(lines, per_prompt=args.mismatched, seed=args.seed))
        mix += mism
        parts["mismatched"] = len(mism)
    if args.humor_again:
        again = [e for e in read_records(args.humor_again, vm.schema) if e.source.startswith("mallard")
                 or (e.attributes["humor"] >= 3 and e.attributes["toxicity"] <= args.max_toxicity)]
        mix += again
        parts["humour_again"] = len(again)
    if args.top_toxic:
        top = vm.schema["toxicity"].high
        unique = {(e.prompt, e.response): e for e in mix + examples if e.attributes["toxicity"] == top}
        mix += list(unique.values()) * args.top_toxic
        parts["top_toxic_copies"] = len(unique) * args.top_toxic
    rng.shuffle(mix)
    write_records(args.out, mix, vm.schema, "VALUE_TO_TEXT", overwrite=True)
    print(f"{len(mix)} records → {args.out}: " + ", ".join(f"{k} {v}" for k, v in parts.items()))
    for a in vm.schema.names:
        print(f"  {a}: {dict(sorted(collections.Counter(e.attributes[a] for e in mix).items()))}")


if __name__ == "__main__":
    main()
