"""Write a DGLM artifact's diffusion model and probes back out as the folders the training verbs
take (`train-diffusion`'s output, `train-probe`'s output), so `train-decoder --init-from` can
continue the decoder side of a shipped artifact with the same diffusion model and probes.

    python experiments/dglm/export_parts.py ARTIFACT OUT_DIR
    # then: steerlab dglm train-decoder --diffusion OUT_DIR/diffusion --init-from ARTIFACT \
    #         --probe sentiment=OUT_DIR/probe-sentiment --probe toxicity:clean,toxic=OUT_DIR/probe-toxicity ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import steerlab
from steerlab.methods.dglm.train import DiffusionModel
from steerlab.scoring.linear import LinearHead
from steerlab.scoring.probes import EmbeddingProbe


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    meta = {"data": {**art.meta.get("provenance", {}), "encoder": art.encoder},
            "training": art.meta.get("training", {}).get("diffusion", {}),
            "validation": art.meta.get("diffusion_validation", {})}
    DiffusionModel(art.diffusion, meta).save(out / "diffusion", overwrite=True)
    for name, p in art.probes.items():
        EmbeddingProbe(art.encoder, LinearHead(p.coef, p.intercept, p.mean, p.std), p.info).save(
            out / f"probe-{name}", overwrite=True)
        print(f"{name} ({p.labels[0]},{p.labels[1]}) -> {out / f'probe-{name}'}")
    print(f"diffusion -> {out / 'diffusion'}")


if __name__ == "__main__":
    main()
