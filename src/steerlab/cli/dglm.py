"""``steerlab dglm``: DGLM's data, training and assembly verbs (build-pairs, train-diffusion,
train-decoder, train-probe, assemble)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from steerlab.cli.common import OVERWRITE, console, load, out
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import SteerlabError

app = typer.Typer(help="DGLM: diffusion-guided language modelling (pairs, diffusion model).", no_args_is_help=True)


@app.command("build-pairs")
def build_pairs_cmd(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Decoder whose tokenizer cuts the windows."),
    sources: list[str] = typer.Option([], "--source", help="Corpora to use (repeatable; default: all)."),
    encoder: str = typer.Option("all-minilm-l6-v2", help="Packaged sentence encoder."),
    prefix_tokens: int = typer.Option(32, min=1),
    continuation_tokens: int = typer.Option(32, min=1),
    cache_dir: Path | None = typer.Option(None, help="Cache folder (default: under STEERLAB_CACHE)."),
) -> None:
    """Cut (prefix, continuation) pairs from the packaged corpora and embed them (cached)."""
    from steerlab.methods.dglm.data import build_pairs, corpora

    unknown = sorted(set(sources) - set(corpora()))
    if unknown:  # before loading anything
        raise SteerlabError(f"unknown DGLM corpus {unknown}; known: {', '.join(corpora())}")
    lm = load(model)
    data = build_pairs(lm.tokenizer, lm.name, sources=sources or None, encoder=encoder, prefix_tokens=prefix_tokens,
                       continuation_tokens=continuation_tokens, cache_dir=cache_dir)
    p = data.provenance
    out.print(f"{p['pairs']} pairs ({p['per_split']}), {p['dim']}-d embeddings; per source: {p['per_source']}")


@app.command("train-diffusion")
def train_diffusion_cmd(
    out_dir: Path = typer.Option(..., "--out", "-o"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Decoder whose pairs to train on."),
    encoder: str = typer.Option("all-minilm-l6-v2", help="Packaged sentence encoder of the pairs."),
    n_steps: int = typer.Option(6000, min=1),
    batch_size: int = typer.Option(256, min=1),
    lr: float = typer.Option(5e-4),
    width: int = typer.Option(256, min=8),
    layers: int = typer.Option(4, min=1),
    n_tokens: int = typer.Option(8, min=1, help="Feature tokens the embedding is split into."),
    cond_dropout: float = typer.Option(0.1, help="Prefix dropout (classifier-free guidance)."),
    seed: int = typer.Option(0),
    checkpoint_dir: Path | None = typer.Option(None, help="Checkpoints (default: OUT.ckpt)."),
    restart: bool = typer.Option(False, help="Train from step 0 even if a checkpoint of another run is there."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Train the semantic diffusion model on the cached pairs (builds them first if needed)."""
    import os

    from steerlab.core.atomic import check_dir_target
    from steerlab.methods.dglm.data import build_pairs
    from steerlab.methods.dglm.diffusion import DiffusionConfig
    from steerlab.methods.dglm.train import CONFIG, WEIGHTS, train_diffusion

    check_dir_target(out_dir, {CONFIG, WEIGHTS}, overwrite=overwrite, what="DGLM diffusion model")
    lm = load(model)
    data = build_pairs(lm.tokenizer, lm.name, encoder=encoder)
    del lm
    config = DiffusionConfig(dim=int(data.prefix.shape[1]), n_tokens=n_tokens, width=width, layers=layers,
                             heads=max(1, width // 64), cond_dropout=cond_dropout)
    trained = train_diffusion(data, config, n_steps=n_steps, batch_size=batch_size, lr=lr, seed=seed,
                              checkpoint_dir=checkpoint_dir or out_dir.with_name(out_dir.name + ".ckpt"),
                              restart=restart, device=os.environ.get("STEERLAB_DEVICE", "cpu"))
    trained.save(out_dir, overwrite=overwrite)
    v = trained.meta["validation"]
    console.print(f"wrote {out_dir}")
    out.print(f"held out: v-loss {v['v_loss']:.4f}; cosine to the true continuation: conditional "
              f"{v['cos_conditional']:.3f}, unconditional {v['cos_unconditional']:.3f}, another continuation "
              f"{v['cos_other_continuation']:.3f}, the prefix itself {v['cos_prefix_itself']:.3f}")


@app.command("train-decoder")
def train_decoder_cmd(
    diffusion: Path = typer.Option(..., "--diffusion", help="Diffusion model folder (train-diffusion's output)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="The DGLM artifact to write."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The decoder."),
    probe: list[str] = typer.Option([], "--probe", help="NAME=DIR or NAME:LOW,HIGH=DIR: an embedding probe to steer "
                                                        "with, its label names (default negative,positive; "
                                                        "repeatable; default: the shipped sentiment probe)."),
    n_steps: int = typer.Option(400, min=1),
    batch_size: int = typer.Option(8, min=1),
    lr: float = typer.Option(1e-3, help="The prompt generator's learning rate."),
    lora_lr: float | None = typer.Option(None, help="The decoder LoRA's learning rate (default lr / 5)."),
    prefix_drop: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of rows trained without their prefix "
                                                                  "(the soft prompt alone carries the text)."),
    short_prefix: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of rows with a prefix whose prefix is "
                                                                    "cut to its last 4-16 tokens (short prompts)."),
    k: int = typer.Option(8, min=1, help="Soft-prompt vectors."),
    r: int = typer.Option(8, min=1, help="LoRA rank on the decoder's attention."),
    seed: int = typer.Option(0),
    checkpoint_dir: Path | None = typer.Option(None, help="Checkpoints every 100 steps and on Ctrl-C; a rerun of "
                                                          "the same command resumes (default: OUT.ckpt)."),
    restart: bool = typer.Option(False, help="Train from step 0 even if a checkpoint of another run is there."),
    init_from: Path | None = typer.Option(None, "--init-from", help="A DGLM artifact whose prompt generator and "
                                                                     "LoRA to continue training (a longer run with "
                                                                     "a new schedule; its k and r are kept)."),
    name: str = typer.Option("dglm", help="The artifact's name."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Train the prompt generator and the decoder's LoRA; write the whole DGLM artifact."""
    from steerlab.core.artifact import ARTIFACT_FILES
    from steerlab.core.atomic import check_dir_target
    from steerlab.methods.dglm import DGLMArtifact
    from steerlab.methods.dglm.data import build_pairs
    from steerlab.methods.dglm.decoder import PromptGeneratorConfig, train_decoder
    from steerlab.methods.dglm.train import DiffusionModel
    from steerlab.scoring.scorers import shipped_probe_path

    check_dir_target(out_dir, ARTIFACT_FILES, overwrite=overwrite, what="artifact")
    specs = _probe_specs(probe or [f"sentiment={shipped_probe_path('sentiment')}"])  # checked before loading
    dm = DiffusionModel.load(diffusion)
    init = None
    if init_from is not None:
        from steerlab.core.artifact import load_artifact

        base = load_artifact(init_from)
        if not isinstance(base, DGLMArtifact):
            raise SteerlabError(f"{init_from} is a {base.method} artifact, not DGLM")
        if base.lora_scaling != 2.0:
            raise SteerlabError(f"{init_from}'s LoRA scaling is {base.lora_scaling}; train-decoder trains at 2 "
                                "(alpha 2r)")
        init = (base.generator, base.lora)
        r = next(iter(base.lora.values()))[0].shape[0] if base.lora else r
    encoder = str(dm.meta.get("data", {}).get("encoder") or "all-minilm-l6-v2")
    probes = _load_probes(specs, encoder)
    lm = load(model)
    data = build_pairs(lm.tokenizer, lm.name, encoder=encoder)
    config = init[0].config if init else PromptGeneratorConfig(dim=dm.config.dim, hidden=lm.hidden_size, k=k)
    ckpt = checkpoint_dir or out_dir.with_name(out_dir.name + ".ckpt")
    generator, factors, record = train_decoder(lm, data, config, n_steps=n_steps, batch_size=batch_size, lr=lr,
                                               lora_lr=lora_lr, prefix_drop=prefix_drop,
                                               short_prefix=short_prefix, r=r, lora_alpha=2.0 * r,
                                               seed=seed, checkpoint_dir=ckpt, restart=restart, init=init)
    if init_from is not None:
        record["init_from"] = {"artifact": str(base.name), "decoder": {k: v for k, v in base.meta.get(
            "training", {}).get("decoder", {}).items() if k != "history"}}
    art = DGLMArtifact(dm.model, generator, factors, 2.0, probes, encoder, lm.fingerprint,
                       {"name": name, "training": {"decoder": record, "diffusion": dm.meta.get("training", {})},
                        "diffusion_validation": dm.meta.get("validation", {}), "provenance": data.provenance},
                       data.guidance_covariance())
    art.save(out_dir, overwrite=overwrite)
    console.print(f"wrote {out_dir}")
    out.print(f"decoder loss {record['loss_first']:.3f} -> {record['loss_last_20']:.3f} over {n_steps} steps "
              f"({record['seconds']:.0f} s)")


@app.command("assemble")
def assemble_cmd(
    base: Path = typer.Option(..., "--from", help="A DGLM artifact to start from."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="The DGLM artifact to write."),
    diffusion: Path | None = typer.Option(None, "--diffusion", help="Replace its diffusion model (a train-diffusion "
                                                                     "folder, e.g. trained elsewhere)."),
    probe: list[str] = typer.Option([], "--probe", help="Add or replace a probe: NAME=DIR or NAME:LOW,HIGH=DIR "
                                                        "(repeatable)."),
    drop_probe: list[str] = typer.Option([], "--drop-probe", help="Remove a probe by name (repeatable)."),
    covariance: bool = typer.Option(False, "--covariance", help="(Re)compute the embedding covariance that probe "
                                                                "guidance steps along, from the decoder's training "
                                                                "pairs (built and cached as build-pairs does)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The decoder whose pairs --covariance reads."),
    name: str = typer.Option("", help="The new artifact's name (default: the folder's name)."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Make a DGLM artifact from another one's parts: a diffusion model trained separately (the
    decoder side does not depend on it), new probes to steer with, probes removed, the guidance
    covariance added or recomputed (kept from the base otherwise)."""
    from steerlab.core.artifact import ARTIFACT_FILES, load_artifact
    from steerlab.core.atomic import check_dir_target
    from steerlab.methods.dglm import DGLMArtifact
    from steerlab.methods.dglm.train import DiffusionModel

    check_dir_target(out_dir, ARTIFACT_FILES, overwrite=overwrite, what="artifact")
    specs = _probe_specs(probe)
    art = load_artifact(base)
    if not isinstance(art, DGLMArtifact):
        raise SteerlabError(f"{base} is a {art.method} artifact, not DGLM")
    meta = {**art.meta, "name": name or out_dir.name, "assembled_from": art.name}
    denoiser = art.diffusion
    if diffusion is not None:
        dm = DiffusionModel.load(diffusion)
        enc = str(dm.meta.get("data", {}).get("encoder") or art.encoder)
        if enc != art.encoder or dm.config.dim != art.diffusion.config.dim:
            raise SteerlabError(f"the diffusion model works on {enc} ({dm.config.dim}-d); the artifact's prompt "
                                f"generator reads {art.encoder} ({art.diffusion.config.dim}-d)")
        denoiser = dm.model
        meta["training"] = {**meta.get("training", {}), "diffusion": dm.meta.get("training", {})}
        meta["diffusion_validation"] = dm.meta.get("validation", {})
    probes = {k: v for k, v in art.probes.items() if k not in drop_probe}
    unknown = sorted(set(drop_probe) - set(art.probes))
    if unknown:
        raise SteerlabError(f"no probe named {unknown[0]!r} in {base}; it has {', '.join(sorted(art.probes))}")
    probes.update(_load_probes(specs, art.encoder))
    cov = art.guide_cov
    if covariance:
        from steerlab.methods.dglm.data import build_pairs

        lm = load(model)
        if art.model is not None and lm.fingerprint.config_hash != art.model.config_hash:
            raise SteerlabError(f"{model} is not the decoder {art.name!r} was trained for ({art.model.name})")
        cov = build_pairs(lm.tokenizer, lm.name, encoder=art.encoder).guidance_covariance()
    new = DGLMArtifact(denoiser, art.generator, art.lora, art.lora_scaling, probes, art.encoder, art.model, meta,
                       cov)
    new.save(out_dir, overwrite=overwrite)
    listed = ", ".join(f"{k} ({v.labels[0]}/{v.labels[1]})" for k, v in probes.items())
    step = "covariance" if cov is not None else "diagonal"
    console.print(f"wrote {out_dir}: probes {listed}; guidance step {step}")


def _probe_specs(items: list[str]) -> list[tuple[str, tuple[str, str], str]]:
    """``NAME=DIR`` / ``NAME:LOW,HIGH=DIR`` -> (name, labels, folder); bad specs fail before loading."""
    specs = []
    for item in items:
        head, sep, folder = item.partition("=")
        pname, _, label_spec = head.partition(":")
        labels = tuple(x.strip() for x in label_spec.split(",")) if label_spec else ("negative", "positive")
        if not sep or not pname or not folder or len(labels) != 2 or not all(labels) or labels[0] == labels[1]:
            raise SteerlabError(f"--probe takes NAME=DIR or NAME:LOW,HIGH=DIR, got {item!r}")
        specs.append((pname, (labels[0], labels[1]), folder))
    return specs


def _load_probes(specs: list[tuple[str, tuple[str, str], str]], encoder: str) -> dict[str, Any]:
    from steerlab.methods.dglm.artifact import probe_from_embedding_probe
    from steerlab.scoring.probes import EmbeddingProbe

    probes = {}
    for pname, labels, folder in specs:
        ep = EmbeddingProbe.load(folder)
        if ep.encoder != encoder:
            raise SteerlabError(f"probe {pname!r} reads {ep.encoder} embeddings; the DGLM artifact uses {encoder}")
        probes[pname] = probe_from_embedding_probe(ep, labels)
    return probes


def register(root: typer.Typer) -> None:
    from steerlab.cli.evaluate import train_probe

    app.command("train-probe", help="Train a probe on any labelled jsonl for DGLM to steer with "
                                    "(the same as steerlab eval train-probe; add it with train-decoder --probe).")(
        train_probe)
    root.add_typer(app, name="dglm")
