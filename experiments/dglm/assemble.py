"""Assemble the shipped DGLM artifact from its separately trained parts:

* the decoder side (prompt generator + LoRA) from ``steerlab dglm train-decoder`` (CPU),
* the diffusion model trained on a lent GPU (``gpu/train_gpu.py``, config w256l4),
* probes: the shipped sentiment probe, and a toxicity probe trained here on ``tweets-toxicity``
  (labels clean / toxic).

    python experiments/dglm/assemble.py DECODER_ARTIFACT DIFFUSION_DIR OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

from steerlab.core.artifact import load_artifact
from steerlab.data.corpus_sets import CORPUS_SETS
from steerlab.methods.dglm import DGLMArtifact
from steerlab.methods.dglm.artifact import probe_from_embedding_probe
from steerlab.methods.dglm.train import DiffusionModel
from steerlab.scoring.probes import EmbeddingProbe, train_probe
from steerlab.scoring.scorers import shipped_probe_path


def main() -> None:
    decoder_dir, diffusion_dir, out = sys.argv[1:4]
    dec = load_artifact(decoder_dir)
    assert isinstance(dec, DGLMArtifact)
    dm = DiffusionModel.load(diffusion_dir)
    tox = CORPUS_SETS["tweets-toxicity"]()
    tprobe = train_probe(tox.positive + tox.negative, [1] * len(tox.positive) + [0] * len(tox.negative),
                         source=tox.source)
    print("toxicity probe", tprobe.info)
    sprobe = EmbeddingProbe.load(shipped_probe_path("sentiment"))
    probes = {"sentiment": probe_from_embedding_probe(sprobe, ("negative", "positive")),
              "toxicity": probe_from_embedding_probe(tprobe, ("clean", "toxic"))}
    meta = dict(dec.meta)
    meta["name"] = Path(out).name
    meta["training"] = {**meta.get("training", {}), "diffusion": dm.meta.get("training", {})}
    meta["diffusion_validation"] = {**dm.meta.get("validation", {}), **dm.meta.get("validation_more", {})}
    meta["diffusion_data"] = dm.meta.get("data", {})
    art = DGLMArtifact(dm.model, dec.generator, dec.lora, dec.lora_scaling, probes, dec.encoder, dec.model, meta)
    art.save(out, overwrite=True)
    print("wrote", out)


if __name__ == "__main__":
    main()
