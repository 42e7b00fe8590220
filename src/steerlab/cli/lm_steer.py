"""LM-Steer verbs: ``steerlab train lm-steer``, ``steerlab explain``, ``steerlab transfer``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from steerlab.cli.common import OVERWRITE, check_artifact_out, console, load, model_for, out
from steerlab.cli.config_options import config_command
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import SteerlabError
from steerlab.methods.lm_steer.config import LMSteerTrainConfig

train_app = typer.Typer(no_args_is_help=True, help="Train a steering artifact.")


def _train_lm_steer(
    data: str = typer.Option(..., "--data", "-d", help="Labelled/paired jsonl, or a set: sentiment, rt-sentiment, "
                                                       "tweets-sentiment, tweets-toxicity."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Artifact directory to write."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    checkpoint_dir: Path | None = typer.Option(None, help="Resumable checkpoints (default: OUT.ckpt)."),
    restart: bool = typer.Option(False, "--restart", help="Train from step 0 even if --checkpoint-dir holds a "
                                 "checkpoint (a checkpoint of other data or settings is never resumed)."),
    name: str = typer.Option(""),
    overwrite: bool = OVERWRITE,
    *,
    config: LMSteerTrainConfig,
) -> None:
    from steerlab.data.pairs import as_contrast
    from steerlab.methods.lm_steer import train

    contrast = as_contrast(data)
    check_artifact_out(out_dir, overwrite)
    lm = load(model)
    art = train(lm, contrast, name=name or None, restart=restart,
                checkpoint_dir=checkpoint_dir or out_dir.with_name(out_dir.name + ".ckpt"), **config.train_kwargs())
    from accelerate import PartialState

    if not PartialState().is_main_process:  # under `accelerate launch`, one process writes
        return
    art.save(out_dir, overwrite=overwrite)
    t = art.meta["training"]
    console.print(f"saved {out_dir}: {t['params_per_steer']} parameters per steer "
                  f"({t['params_percent_of_model_per_steer']:.3f}% of the model), loss {t['loss_first']:.3f} → "
                  f"{t['loss_last_50']:.3f}, {t['seconds_this_run']:.0f} s")


train_app.command("lm-steer")(config_command(
    LMSteerTrainConfig, _train_lm_steer,
    "Train LM-Steer steers with the model frozen (resumes from --checkpoint-dir when the data and settings match)."))


def explain(path: Path = typer.Argument(..., help="LM-Steer artifact directory."),
            text: str = typer.Option(..., "--text", "-t"), value: float = typer.Option(5.0),
            steer: str = typer.Option("0", help="Steer index or name."),
            html: Path | None = typer.Option(None, help="Also write the highlighted text as HTML."),
            top: int = typer.Option(12, min=1, help="Tokens to list per direction."),
            model: str = typer.Option("", "--model", "-m", help="Model (default: the artifact's packaged model)."),
            overwrite: bool = OVERWRITE) -> None:
    """Highlight the spans of TEXT the steer explains, and list the tokens it moves most."""
    from steerlab.core.artifact import load_artifact
    from steerlab.core.atomic import atomic_file, check_file_target
    from steerlab.methods.lm_steer import LMSteer
    from steerlab.methods.lm_steer.interpret import dimensions, evidence, token_shifts

    art = load_artifact(path)
    if not isinstance(art, LMSteer):
        raise SteerlabError(f"{path} is a {art.method!r} artifact; explain needs an lm_steer artifact")
    idx: int | str = int(steer) if steer.isdigit() else steer
    if html:
        check_file_target(html, overwrite=overwrite, what="HTML file")
    lm = load(model_for(model, [art]))
    ev = evidence(lm, art, text, value=value, steer_index=idx)
    out.print("[bold]evidence[/bold] (green: explained by +value, red: by −value)")
    out.print(ev.rich())
    if html:
        with atomic_file(html, overwrite=overwrite, what="HTML file") as tmp:
            tmp.write_text(ev.html(), encoding="utf-8")
        console.print(f"wrote {html}")
    shifts = token_shifts(lm, art, [text], value=value, steer_index=idx, k=top)
    table = Table(title=f"tokens moved most at value {value:+g}")
    table.add_column("promoted")
    table.add_column("suppressed")
    for (a, x), (b, y) in zip(shifts["up"], shifts["down"]):
        table.add_row(f"{a!r} {x:+.2f}", f"{b!r} {y:+.2f}")
    out.print(table)
    if art.adaptor_class == "multiply":
        for d in dimensions(lm, art, steer_index=idx, n_dims=3, k=8):
            share = f"{100 * float(d['share']):.0f}% of W"
            out.print(f"dimension {d['dim']} ({share}): + {d['positive_end']}  − {d['negative_end']}")


def transfer_cmd(path: Path = typer.Argument(..., help="LM-Steer artifact (multiply adaptor)."),
                 to: str = typer.Option(..., "--to", help="Target model."),
                 out_dir: Path = typer.Option(..., "--out", "-o"),
                 top_k: int = typer.Option(4000, help="Shared tokens used to fit the embedding map."),
                 calibrate: bool = typer.Option(True, help="Fix sign and scale on the target's logit shift."),
                 model: str = typer.Option("", "--model", "-m", help="Source model (default: the artifact's "
                                           "packaged model)."),
                 overwrite: bool = OVERWRITE) -> None:
    """Map a trained steer onto another model through their shared vocabulary."""
    from steerlab.core.artifact import load_artifact
    from steerlab.methods.lm_steer import LMSteer
    from steerlab.methods.lm_steer.transfer import transfer

    art = load_artifact(path)
    if not isinstance(art, LMSteer):
        raise SteerlabError(f"{path} is a {art.method!r} artifact; transfer needs an lm_steer artifact")
    check_artifact_out(out_dir, overwrite)
    source = load(model_for(model, [art]))
    target = load(to)
    moved = transfer(art, source, target, top_k=top_k, calibrate=calibrate)
    moved.save(out_dir, overwrite=overwrite)
    fit = moved.meta["provenance"]["transfer"]
    console.print(f"saved {out_dir}: {fit['shared_tokens']} shared tokens, map fitted on {fit['top_k']}, "
                  f"relative error {fit['backward_rel_error']:.3f}")
    for c in fit.get("calibration", {}).get("steers", []):
        console.print(f"  steer {c['steer']}: logit-shift correlation {c['correlation_before']:+.3f} before "
                      f"calibration, {'flipped, ' if c['flipped'] else ''}scale {c['scale']:.3g}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("explain")(explain)
    app.command("transfer")(transfer_cmd)
