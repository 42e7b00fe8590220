"""Detoxification on prompts SmolLM2 actually continues toxically. The detoxify task's prompt set is
at the model's ceiling (98% non-toxic unsteered), so it cannot show whether guidance detoxifies.
Here the prompts are the first halves of the toxic tweets (alt-profanity-check > 0.5, the
``tweets-toxicity`` set) whose documents DGLM never trained on (its validation and test splits),
leaving out the few an artifact was built from (the harness refuses those), run through the eval
harness's detoxify task (same scorers, baselines and fluency reference) for
DGLM (guide ``toxicity:clean``), the shipped LM-Steer toxicity steer, and an activation-steering
vector extracted here from the same ``tweets-toxicity`` set (mean difference, layer 11 as the
shipped vectors; none ships for toxicity).

    python experiments/dglm/toxic_challenge.py [OUT_DIR] [SAMPLES] [RUN ...]

RUN: dglm-smollm2, lmsteer-toxicity, toxicity-vec (default: all).

Writes the prompt file and one report folder per artifact under OUT_DIR.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import steerlab
from steerlab.artifacts import shipped
from steerlab.data.corpora import tweets
from steerlab.data.corpus_sets import CORPUS_SETS
from steerlab.data.pairs import text_hashes
from steerlab.eval.harness import evaluate, with_protocol
from steerlab.eval.protocol import QUICK
from steerlab.eval.tasks import TASKS
from steerlab.methods.dglm.data import _split_of, _text_and_group
from steerlab.models.loading import load_model

RUNS = {"dglm-smollm2": ([1.0, 2.0, 4.0, 8.0], {"guide": "toxicity:clean"}),
        "lmsteer-toxicity": ([-1.0, -2.0, -4.0], {}),
        "toxicity-vec": ([-2.0, -4.0, -6.0, -8.0], {"layers": [11]})}


def challenge_prompts(used: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """First halves (3–16 words) of the held-out toxic tweets, deduplicated, in corpus order,
    leaving out any whose text hash is in ``used`` (prompts an artifact was built from)."""
    toxic = set(CORPUS_SETS["tweets-toxicity"]().positive)
    out: list[str] = []
    for doc in tweets():
        if doc.text not in toxic or _split_of(_text_and_group(doc)[1]) == "train":
            continue
        words = doc.text.split()
        prompt = " ".join(words[: min(16, max(3, len(words) // 2))])
        if prompt not in out and text_hashes([prompt])[0] not in used:
            out.append(prompt)
    return out


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("experiments/dglm/results/toxic_challenge")
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    runs = sys.argv[3:] or list(RUNS)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = load_model("smollm2-135m")
    cat = shipped()
    arts = {name: steerlab.extract(lm, "tweets-toxicity") if name == "toxicity-vec"
            else steerlab.load_artifact(cat[name].path) for name in RUNS}  # all: the same prompts every run
    used = {h for a in arts.values() for h in a.meta.get("provenance", {}).get("text_hashes", [])}
    prompts = challenge_prompts(used)
    prompt_file = out_dir / "prompts.txt"
    prompt_file.write_text("\n".join(prompts) + "\n")
    print(f"{len(prompts)} prompts -> {prompt_file}", flush=True)
    task = dataclasses.replace(TASKS.get("detoxify"), name="detoxify-challenge", prompts=str(prompt_file))
    protocol = with_protocol(QUICK, n_prompts=len(prompts), samples=samples, max_new_tokens=20)
    for name in runs:
        strengths, options = RUNS[name]
        evaluate(lm, task, arts[name], strengths=strengths, options=options, protocol=protocol, out_dir=out_dir / name,
                 overwrite=True)
        print(f"{name}: {out_dir / name}", flush=True)


if __name__ == "__main__":
    main()
