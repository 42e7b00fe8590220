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

and writes one VALUE_TO_TEXT file for ``steerlab steerlm sft --init ADAPTER``.

    python benchmarks/steerlm_humor_round.py --value-model vm/ --records R/data/annotated.v2t.jsonl \\
        --records R/r2.samples.v2t.jsonl --out mix.v2t.jsonl
"""

from __future__ import annotations

import argparse
import collections
import random
from pathlib import Path

from steerlab.methods.steerlm import read_records
from steerlab.methods.steerlm.annotate import humor_corpus_pairs, label, relabel
from steerlab.methods.steerlm.records import contrast_subset, write_records
from steerlab.methods.steerlm.value_model import ValueModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--value-model", type=Path, required=True)
    ap.add_argument("--records", type=Path, action="append", required=True, help="earlier rounds' records")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--others", type=int, default=500, help="contrast records of the other knobs")
    ap.add_argument("--toxic", type=int, default=150, help="records at toxicity ≥ 3")
    ap.add_argument("--max-toxicity", type=int, default=1, help="humour pairs only below this toxicity")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    vm = ValueModel.load(args.value_model)
    old = [ex for path in args.records for ex in read_records(path, vm.schema) if ex.response.strip()]
    examples, _ = relabel(vm, old)
    humor = contrast_subset([e for e in examples if e.attributes["toxicity"] <= args.max_toxicity], ["humor"], 2)
    pairs, given = humor_corpus_pairs()
    mallard, _ = label(vm, pairs, given)
    taken = {id(e) for e in humor}
    others = contrast_subset([e for e in examples if id(e) not in taken], ["toxicity", "sentiment", "verbosity"], 2)
    rng.shuffle(others)
    toxic = [e for e in examples if e.attributes["toxicity"] >= 3]
    mix = mallard + humor + others[: args.others] + rng.sample(toxic, min(args.toxic, len(toxic)))
    rng.shuffle(mix)
    write_records(args.out, mix, vm.schema, "VALUE_TO_TEXT")
    print(f"{len(mix)} records → {args.out}: {len(mallard)} Mallard, {len(humor)} humour contrast, "
          f"{min(args.others, len(others))} other contrast, {min(args.toxic, len(toxic))} toxic")
    for a in vm.schema.names:
        print(f"  {a}: {dict(sorted(collections.Counter(e.attributes[a] for e in mix).items()))}")


if __name__ == "__main__":
    main()
