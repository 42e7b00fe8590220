"""Does a SteerLM adapter read one attribute's digit on real data? A likelihood check (~1 min).

For response pairs that differ on ``--attribute`` (default: the Mallard corpus's plain and funny
replies to the same setup, humour level from a person's rating), the mean per-token loss of each
response is measured with that attribute's digit set low and high (the other attributes at the
record's labels). An adapter that reads the digit makes the high response likelier under the high
digit and the low response likelier under the low digit:

    effect = mean over high responses [loss(low digit) − loss(high digit)]
           + mean over low responses  [loss(high digit) − loss(low digit)]   (nats/token; 0 = ignores it)

Sampled sweeps need hundreds of generations to see a small effect; this needs a forward pass per
response and digit, so it separates "the adapter never learnt the digit" from "it learnt it but
sampling does not show it".

The measurement is ``steerlab.methods.steerlm.diagnostics.digit_sensitivity``.

    python experiments/steerlm/steerlm_digit_sensitivity.py results/r2 results/r3h --records mix.v2t.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

import steerlab
from steerlab.methods.steerlm import read_records
from steerlab.methods.steerlm.annotate import humor_corpus_examples
from steerlab.methods.steerlm.diagnostics import digit_sensitivity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapters", nargs="+", type=Path)
    ap.add_argument("--attribute", default="humor")
    ap.add_argument("--records", type=Path, help="records to take low/high pairs from (default: Mallard setups)")
    ap.add_argument("--low", type=int, default=0)
    ap.add_argument("--high", type=int, default=4)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    lm = steerlab.load_model(args.model)
    arts = [steerlab.load_artifact(p) for p in args.adapters]
    schema = arts[0].schema
    if args.records:
        examples = read_records(args.records, schema)
    else:
        examples = humor_corpus_examples(schema)
    for path, art in zip(args.adapters, arts):
        d = digit_sensitivity(lm, art, examples, args.attribute, low=args.low, high=args.high, low_max=1,
                              high_min=3)
        print(f"{path}: effect {d.effect:+.4f} nats/token (high responses {d.high_gain:+.4f}, low {d.low_gain:+.4f}; "
              f"{d.n_high} high responses, favoured by the high digit: {d.high_favoured:.0%}; "
              f"{d.n_low} low, favoured by the low digit: {d.low_favoured:.0%})")


if __name__ == "__main__":
    main()
