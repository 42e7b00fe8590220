"""``steerlab eval``: measure an artifact on a task against unsteered and prompting baselines.

``steerlab eval --artifact DIR --task sentiment-positive --quick`` · ``steerlab eval ls`` ·
``steerlab eval train-probe --data labelled.jsonl --out probe/`` (a scorer for any attribute).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markdown import Markdown
from rich.table import Table

from steerlab.cli.common import (
    ENGINE,
    OVERWRITE,
    console,
    load,
    model_for,
    out,
    parse_layers,
    parse_opts,
    print_json,
    text_engine,
)

eval_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                       help="Evaluate steering: attribute success, fluency, diversity, baselines.")


@eval_app.callback()
def run(
    ctx: typer.Context,
    artifact: Path | None = typer.Option(None, "--artifact", "-a", help="Artifact directory (omit: baselines only)."),
    task: str = typer.Option("sentiment-positive", "--task", "-t", help="Task name (see `steerlab eval ls`)."),
    quick: bool = typer.Option(False, "--quick", help="8 prompts × 3 samples (CI); default: full protocol."),
    strength: list[float] = typer.Option([], "--strength", "-s", help="Strength(s) to evaluate (repeatable: a sweep)."),
    layers: str = typer.Option("", help="Steer only these layers (vectors)."),
    opt: list[str] = typer.Option([], "--opt", help="Method option key=value (JSON value), e.g. "
                                                    "guide=sentiment:positive (DGLM)."),
    layer_sweep: str = typer.Option("", help="Also sweep single layers, e.g. 7,9,11 (vectors)."),
    n_prompts: int | None = typer.Option(None, help="Override the number of prompts."),
    samples: int | None = typer.Option(None, help="Override samples per prompt (k)."),
    max_new_tokens: int | None = typer.Option(None, help="Override new tokens per sample (T)."),
    seed: int | None = typer.Option(None, help="Sampling and bootstrap seed."),
    batch_size: int | None = typer.Option(None, min=1, help="Rows generated together (default 32). Larger is "
                                          "faster for 1B+ models on CPU and on GPUs; samples drawn depend on it, "
                                          "so keep it to reproduce a card (the card records it)."),
    reference: str = typer.Option("auto", help="Perplexity model: auto (qwen2.5-0.5b if installed), self, or a name."),
    budget: float = typer.Option(0.10, help="Fluency budget for the automatic strength choice (+10% perplexity)."),
    model: str = typer.Option("", "--model", "-m", help="Model (default: the artifact's)."),
    out_dir: Path = typer.Option(Path("results/eval"), "--out", "-o", help="Report directory."),
    save_card: bool = typer.Option(True, help="Store the chosen strength and sweep in the artifact's eval card."),
    json_out: bool = typer.Option(False, "--json"),
    engine: str = ENGINE,
    overwrite: bool = OVERWRITE,
) -> None:
    """Evaluate an artifact (or just the baselines) on a task."""
    if ctx.invoked_subcommand:
        return
    from steerlab.core.artifact import load_artifact
    from steerlab.eval.harness import evaluate, with_protocol
    from steerlab.eval.protocol import FULL, QUICK
    from steerlab.eval.tasks import TASKS

    task_obj = TASKS.get(task)
    art = load_artifact(artifact) if artifact else None
    proto = with_protocol(QUICK if quick else FULL, n_prompts=n_prompts, samples=samples,
                          max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    from steerlab.core.atomic import check_folder
    from steerlab.eval.report import EvalReport

    check_folder(out_dir, EvalReport.files(task_obj.name), overwrite=overwrite, what="evaluation report")

    model_name = model_for(model, [art] if art else [])
    lm = load(model_name)
    gen_engine = text_engine(engine, model_name, [art] if art is not None else [])
    options = {**parse_opts(opt), **({"layers": parse_layers(layers)} if layers else {})}
    variants = [{"layers": [la]} for la in parse_layers(layer_sweep) or []] or None
    with console.status(f"evaluating {task_obj.name}: {proto.n_prompts} prompts × {proto.samples} samples"):
        report = evaluate(lm, task_obj, art, strengths=strength or None, options=options, variants=variants,
                          protocol=proto,
                          reference=reference, fluency_budget=budget,
                          artifact_path=artifact if (art and save_card and artifact and artifact.is_dir()) else None,
                          out_dir=out_dir, overwrite=overwrite, engine=gen_engine)
    if json_out:
        print_json(report.to_dict())
        return
    out.print(Markdown(report.to_markdown()))
    console.print(f"report: {out_dir / (task_obj.name + '.md')} (+ .json, plots)")


@eval_app.command("ls")
def ls() -> None:
    """List tasks and scorers."""
    from steerlab.eval.tasks import TASKS
    from steerlab.scoring.scorers import SCORERS

    table = Table(title="tasks")
    for col in ("task", "prompts", "scorer", "goal", "description"):
        table.add_column(col, no_wrap=col != "description")
    for name in TASKS.names():
        t = TASKS.get(name)
        table.add_row(name, t.prompts, t.scorer, f"{t.goal} ({t.success_name})", t.description)
    out.print(table)
    out.print("scorers: " + ", ".join(SCORERS.names()) + ", probe:DIR")


@eval_app.command("train-probe")
def train_probe(data: Path = typer.Option(..., "--data", "-d", help="Labelled jsonl (text/label) or pairs."),
                out_dir: Path = typer.Option(..., "--out", "-o", help="Probe directory to write."),
                encoder: str = typer.Option("all-minilm-l6-v2", help="Packaged encoder name or local dir."),
                holdout: float = typer.Option(0.2, help="Held-out share for the accuracy report."),
                overwrite: bool = OVERWRITE) -> None:
    """Train an embedding probe scorer for any attribute (use it as --scorer probe:DIR)."""
    from steerlab.data.pairs import load_contrast
    from steerlab.scoring.probes import train_probe as do_train

    cs = load_contrast(data)
    texts = cs.positive + cs.negative
    labels = [1] * len(cs.positive) + [0] * len(cs.negative)
    with console.status(f"encoding {len(texts)} texts"):
        probe = do_train(texts, labels, encoder=encoder, holdout=holdout, source=str(data))
    probe.save(out_dir, overwrite=overwrite)
    i = probe.info
    console.print(f"saved {out_dir}: held-out accuracy {i['heldout_accuracy']:.3f} "
                  f"(majority {i['majority_baseline']:.3f}, n={i['n_heldout']})")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
