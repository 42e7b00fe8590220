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
    # the negative side redrawn: best of 4 samples by VADER (a second scorer, not the task's probe),
    # every draw kept in --draws-out; the + side kept from the first file (2,437 s):
    python experiments/qwen/self_pairs.py --n 160 --keep-positive experiments/qwen/sentiment_self_pairs.jsonl \
        --best-of 4 --select vader --draws-out experiments/qwen/sentiment_negative_draws.jsonl \
        --out experiments/qwen/sentiment_strong_negative_pairs.jsonl
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
from steerlab.eval.perplexity import conditional_perplexity
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
    ap.add_argument("--keep-positive", type=Path, default=None,
                    help="pairs file written earlier with the same --n: keep its + side, write only the negative")
    ap.add_argument("--negative-instruction", default=None,
                    help="instruction for the negative side (default: the prompting baseline's)")
    ap.add_argument("--best-of", type=int, default=1,
                    help="negative samples per opening; --select picks the one kept")
    ap.add_argument("--select", choices=("vader", "fluent"), default="vader",
                    help="vader: the sample VADER scores most negative; fluent: of the samples VADER scores "
                         "below 0, the one with the lowest perplexity under the model itself (else the most negative)")
    ap.add_argument("--draws-out", type=Path, default=None,
                    help="also write every negative sample with its VADER score and perplexity (JSON lines)")
    args = ap.parse_args()
    if args.neutral_vs is not None and args.keep_positive is not None:
        raise SystemExit("give --neutral-vs or --keep-positive, not both")
    t0 = time.perf_counter()
    lm = steerlab.load_model(args.model)
    plots = [d.text for d in movie_split(rotten_tomatoes(), 0) if d.label == "plot"]
    openings = pick(plots, args.n, seed=3)
    p = Protocol()
    sides: dict[str, list[str]] = {}
    prefixes = {side: TASKS.get(f"sentiment-{side}").instruction + "\n\n" for side in ("positive", "negative")}
    if args.neutral_vs is not None:  # reuse the negative side; the + side is written with no instruction
        sides["negative"] = _side(args.neutral_vs, "negative", openings)
        prefixes = {"positive": ""}
    if args.keep_positive is not None:
        sides["positive"] = _side(args.keep_positive, "positive", openings)
        prefixes = {"negative": prefixes["negative"]}
    if args.negative_instruction and "negative" in prefixes:
        prefixes["negative"] = args.negative_instruction + "\n\n"
    vader = get_scorer("vader")
    for side, prefix in prefixes.items():
        k = args.best_of if side == "negative" else 1
        draws = [steerlab.generate(lm, [prefix + o for o in openings], max_new_tokens=args.max_new_tokens,
                                   temperature=p.temperature, top_p=p.top_p, seed=p.seed + j) for j in range(k)]
        if k == 1:
            sides[side] = draws[0]
            continue
        scores = [vader([o + d for o, d in zip(openings, draw)]) for draw in draws]  # k × n
        ppls = [conditional_perplexity(lm, openings, draw).per_sample for draw in draws]  # k × n
        best = [_pick([scores[j][i] for j in range(k)], [ppls[j][i] for j in range(k)], args.select)
                for i in range(len(openings))]
        sides[side] = [draws[j][i] for i, j in enumerate(best)]
        if args.draws_out is not None:
            args.draws_out.write_text("".join(json.dumps({
                "opening": o, "kept": best[i],
                "draws": [{"text": draws[j][i], "vader": scores[j][i], "ppl": ppls[j][i]} for j in range(k)],
            }) + "\n" for i, o in enumerate(openings)))
    rows = [{"positive": o + pos, "negative": o + neg}
            for o, pos, neg in zip(openings, sides["positive"], sides["negative"])]
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for side in ("positive", "negative"):
        scores = vader([r[side] for r in rows])
        print(f"{side}: mean VADER {sum(scores) / len(scores):+.3f}")
    print(f"{len(rows)} pairs -> {args.out} in {time.perf_counter() - t0:.0f}s")


def _pick(vader: list[float], ppl: list[float], rule: str) -> int:
    """Index of the sample to keep among one opening's draws."""
    most_negative = min(range(len(vader)), key=vader.__getitem__)
    if rule == "vader":
        return most_negative
    negative = [j for j, v in enumerate(vader) if v < 0 and ppl[j] == ppl[j]]  # (ppl is nan when empty)
    return min(negative, key=ppl.__getitem__) if negative else most_negative


def _side(path: Path, side: str, openings: list[str]) -> list[str]:
    """One side's continuations from a pairs file written from the same openings."""
    old = [json.loads(line) for line in path.read_text().splitlines()]
    if len(old) != len(openings) or not all(r[side].startswith(o) for r, o in zip(old, openings)):
        raise SystemExit(f"{path} was not written from these {len(openings)} openings (same --n?)")
    return [r[side][len(o):] for r, o in zip(old, openings)]


if __name__ == "__main__":
    main()
