"""Contrast pairs in the evaluation prompts' own distribution, written by the model itself.

The templated and Rotten Tomatoes vectors contrast texts unlike the sentiment tasks' openings
(plot summaries). Here the model continues openings of plot summaries of *other* movies (half 0
of the corpus; the prompts come from half 1) twice, once under the prompting baseline's positive
instruction and once under its negative one; each pair is (opening + positive continuation,
opening + negative continuation), the instruction dropped. A vector read from these pairs is
the prompting baseline's effect distilled into a direction (no instruction at inference time).

    python experiments/qwen/self_pairs.py --n 160 --out experiments/qwen/sentiment_self_pairs.jsonl
    # negative vs the model's own uninstructed continuation (the + side is then "neutral"):
    python experiments/qwen/self_pairs.py --n 160 --neutral-vs experiments/qwen/sentiment_self_pairs.jsonl \
        --out experiments/qwen/sentiment_neutral_negative_pairs.jsonl
    steerlab extract --data experiments/qwen/sentiment_self_pairs.jsonl --read mean --model qwen2.5-1.5b \
        --out src/steerlab/artifacts/sentiment-distilled-qwen1.5b --name sentiment-distilled-qwen1.5b
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import steerlab
from steerlab.data.corpora import movie_split, rotten_tomatoes
from steerlab.eval.protocol import Protocol
from steerlab.eval.tasks import TASKS
from steerlab.scoring.scorers import get_scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from make_eval_data import pick  # noqa: E402  (the prompt sets' own opening rule)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--n", type=int, default=160, help="openings (pairs)")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--neutral-vs", type=Path, default=None,
                    help="pairs file written earlier with the same --n: keep its negative side, and write the "
                         "uninstructed continuation as the + side")
    args = ap.parse_args()
    t0 = time.perf_counter()
    lm = steerlab.load_model(args.model)
    plots = [d.text for d in movie_split(rotten_tomatoes(), 0) if d.label == "plot"]
    openings = pick(plots, args.n, seed=3)
    p = Protocol()
    sides: dict[str, list[str]] = {}
    prefixes = {side: TASKS.get(f"sentiment-{side}").instruction + "\n\n" for side in ("positive", "negative")}
    if args.neutral_vs is not None:  # reuse the negative side; the + side is written with no instruction
        old = [json.loads(line) for line in args.neutral_vs.read_text().splitlines()]
        if len(old) != len(openings) or not all(r["negative"].startswith(o) for r, o in zip(old, openings)):
            raise SystemExit(f"{args.neutral_vs} was not written from these {len(openings)} openings (same --n?)")
        sides["negative"] = [r["negative"][len(o):] for r, o in zip(old, openings)]
        prefixes = {"positive": ""}
    for side, prefix in prefixes.items():
        sides[side] = steerlab.generate(lm, [prefix + o for o in openings], max_new_tokens=args.max_new_tokens,
                                        temperature=p.temperature, top_p=p.top_p, seed=p.seed)
    rows = [{"positive": o + pos, "negative": o + neg}
            for o, pos, neg in zip(openings, sides["positive"], sides["negative"])]
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    vader = get_scorer("vader")
    for side in ("positive", "negative"):
        scores = vader([r[side] for r in rows])
        print(f"{side}: mean VADER {sum(scores) / len(scores):+.3f}")
    print(f"{len(rows)} pairs -> {args.out} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
