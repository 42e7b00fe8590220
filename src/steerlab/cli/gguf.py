"""``steerlab export-gguf`` / ``import-gguf``: llama.cpp control vectors."""

from __future__ import annotations

from pathlib import Path

import typer

from steerlab.cli.common import OVERWRITE, check_artifact_out, console, load
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import SteerlabError


def export_gguf(path: Path = typer.Argument(..., help="Vector artifact directory."),
                out_file: Path = typer.Argument(..., help="GGUF file to write."),
                strength: float = typer.Option(1.0, help="Scale baked into the file."),
                overwrite: bool = OVERWRITE) -> None:
    """Export a vector as a llama.cpp control vector (use with llama.cpp --control-vector)."""
    from steerlab.core.artifact import load_artifact
    from steerlab.methods.vectors import SteeringVector
    from steerlab.methods.vectors import export_gguf as do_export

    art = load_artifact(path)
    if not isinstance(art, SteeringVector):
        raise SteerlabError(f"{path} is a {art.method!r} artifact; only vectors export to GGUF")
    do_export(art, out_file, strength=strength, overwrite=overwrite)
    console.print(f"wrote {out_file}")


def import_gguf(gguf_file: Path = typer.Argument(..., help="llama.cpp / repeng control vector."),
                out_dir: Path = typer.Argument(..., help="Artifact directory to write."),
                model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model it belongs to."),
                overwrite: bool = OVERWRITE) -> None:
    """Import a llama.cpp control vector as a steerlab artifact bound to --model."""
    from steerlab.methods.vectors import import_gguf as do_import

    do_import(gguf_file)  # fail on a bad file or a bad --out before spending time on the model
    check_artifact_out(out_dir, overwrite)
    lm = load(model)
    vec = do_import(gguf_file, lm)
    vec.save(out_dir, overwrite=overwrite)
    console.print(f"saved {vec!r} to {out_dir}")


def register(app: typer.Typer) -> None:
    app.command("export-gguf")(export_gguf)
    app.command("import-gguf")(import_gguf)
