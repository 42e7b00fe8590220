"""Train a DGLM decoder side (prompt generator + LoRA) on a given pair cache and bundle it with a
diffusion model, without rebuilding pairs (``steerlab dglm train-decoder`` builds or reuses the cache
matching the current pair-building settings):

    python experiments/dglm/train_decoder_on.py PAIR_CACHE DIFFUSION_DIR OUT N_STEPS [LORA_LR [PREFIX_DROP]]

LORA_LR 0 trains the prompt generator alone (the decoder stays the base model); '-' is the default.
PREFIX_DROP: share of rows trained without their prefix. Checkpoints go to OUT.ckpt (resumable).
"""

from __future__ import annotations

import sys

from steerlab.methods.dglm import DGLMArtifact
from steerlab.methods.dglm.artifact import probe_from_embedding_probe
from steerlab.methods.dglm.data import load_pairs
from steerlab.methods.dglm.decoder import PromptGeneratorConfig, train_decoder
from steerlab.methods.dglm.train import DiffusionModel
from steerlab.models.loading import load_model
from steerlab.scoring.probes import EmbeddingProbe
from steerlab.scoring.scorers import shipped_probe_path


def main() -> None:
    cache, diffusion, out, n_steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lora_lr = float(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "-" else None
    prefix_drop = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    data = load_pairs(cache)
    dm = DiffusionModel.load(diffusion)
    lm = load_model("smollm2-135m")
    config = PromptGeneratorConfig(dim=dm.config.dim, hidden=lm.hidden_size)
    generator, factors, record = train_decoder(lm, data, config, n_steps=n_steps, lora_lr=lora_lr,
                                               prefix_drop=prefix_drop, checkpoint_dir=out + ".ckpt", progress=True)
    probes = {"sentiment": probe_from_embedding_probe(EmbeddingProbe.load(shipped_probe_path("sentiment")))}
    art = DGLMArtifact(dm.model, generator, factors, 2.0, probes, "all-minilm-l6-v2", lm.fingerprint,
                       {"name": "dglm-check", "training": {"decoder": record}, "provenance": data.provenance})
    art.save(out, overwrite=True)
    print(f"decoder loss {record['loss_first']:.3f} -> {record['loss_last_20']:.3f} ({record['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
