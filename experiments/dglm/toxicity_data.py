"""Write the derived ``tweets-toxicity`` set (alt-profanity-check > 0.5 toxic vs < 0.05 clean,
same count) as labelled jsonl, for ``steerlab dglm train-probe``:

    python experiments/dglm/toxicity_data.py /tmp/tox.jsonl
    steerlab dglm train-probe --data /tmp/tox.jsonl --out /tmp/tox-probe
"""

from __future__ import annotations

import json
import sys

from steerlab.data.corpus_sets import CORPUS_SETS


def main() -> None:
    cs = CORPUS_SETS["tweets-toxicity"]()
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        for text in cs.positive:
            f.write(json.dumps({"text": text, "label": 1}) + "\n")
        for text in cs.negative:
            f.write(json.dumps({"text": text, "label": 0}) + "\n")
    print(f"{len(cs.positive)} toxic, {len(cs.negative)} clean -> {sys.argv[1]}")


if __name__ == "__main__":
    main()
