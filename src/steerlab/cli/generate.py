"""``steerlab generate``: continue prompts, optionally steered by one or more artifacts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from steerlab.cli.common import load, out, parse_attrs, parse_layers, parse_opts, parse_positions, print_json
from steerlab.errors import SteerlabError


def generate(
    prompt: list[str] = typer.Option([], "--prompt", "-p", help="Prompt (repeatable)."),
    prompts_file: Path | None = typer.Option(None, "--prompts-file", help="One prompt per line."),
    vector: list[Path] = typer.Option([], "--vector", "--steer", "-v",
                                      help="Artifact directory, any method (repeatable: composes)."),
    strength: list[float] = typer.Option([], "--strength", "--value", "-s",
                                         help="Strength per artifact (or one for all)."),
    opt: list[str] = typer.Option([], "--opt", help="Method option key=value (JSON value), e.g. steer=0."),
    layers: str = typer.Option("", help="Steer only these layers of each vector, e.g. 10-12."),
    positions: str = typer.Option("all", help="all, prompt, generated, or an index k (positions >= k)."),
    operator: str = typer.Option("add", help="add, ablate or clamp."),
    attr: list[str] = typer.Option([], "--attr", help="SteerLM attribute name=value (repeatable), e.g. humor=4."),
    guidance: float = typer.Option(1.0, help="Classifier-free guidance scale (1 = off): amplify what the "
                                   "steering changes, against the unsteered model or --guidance-attr."),
    guidance_attr: list[str] = typer.Option([], "--guidance-attr", help="Reference SteerLM attribute "
                                            "name=value for --guidance (repeatable; 'defaults' = every "
                                            "knob at its default)."),
    model: str = typer.Option("", "--model", "-m", help="Model (default: the artifact's, else smollm2-135m)."),
    max_new_tokens: int = typer.Option(48, help="Tokens to generate."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass."),
    top_k: int = typer.Option(0, help="Sample from the k most likely tokens (0 = off)."),
    seed: int | None = typer.Option(None, help="Random seed for sampling."),
    stop: list[str] = typer.Option([], "--stop", help="End a completion at this text, cut from it (repeatable)."),
    chat: bool | None = typer.Option(None, "--chat/--no-chat",
                                     help="Wrap each prompt in the chat template (default: if an artifact was "
                                          "trained on chat turns, e.g. SteerLM)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Use an artifact on a model of the same "
                                        "shapes but other weights (e.g. a fine-tune of its base model)."),
) -> None:
    """Generate text, steered by --vector artifacts at --strength."""
    from steerlab.core.plan import route_options
    from steerlab.data.pairs import load_prompts
    from steerlab.generation.decoding import Decoding
    from steerlab.service import ArtifactStore, GenerationRequest, SteerSpec, resolve, run

    prompts = list(prompt) + (load_prompts(str(prompts_file)) if prompts_file else [])
    if not prompts:
        raise SteerlabError("give at least one --prompt or a --prompts-file")
    store = ArtifactStore()  # paths allowed: the user names directories on the command line
    artifacts = [store.get(str(v)) for v in vector]
    if strength and len(strength) not in (1, len(artifacts)):
        raise SteerlabError(f"{len(strength)} --strength values for {len(artifacts)} --vector artifacts")
    strengths = (strength * len(artifacts) if len(strength) == 1 else strength) or [1.0] * len(artifacts)
    options: dict[str, object] = parse_opts(opt)
    if layers:
        options["layers"] = parse_layers(layers)
    if positions != "all":
        options["positions"] = parse_positions(positions)
    if operator != "add":
        options["operator"] = operator
    routed = route_options(artifacts, options)  # --layers goes to vectors only, steer=0 to LM-Steer only, ...
    reference: str | None = None
    if guidance_attr:
        reference = "" if guidance_attr == ["defaults"] else parse_attrs(guidance_attr, "--guidance-attr")
    request = GenerationRequest(
        prompts, [SteerSpec(str(v), s, o) for v, s, o in zip(vector, strengths, routed)],
        attributes=parse_attrs(attr), guidance=guidance, guidance_reference=reference,
        decoding=Decoding(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                          seed=seed, stop=tuple(stop)),
        chat=chat, model=model or None)
    resolved = resolve(request, store)  # every option and number is checked before the model loads
    lm = load(resolved.model)
    texts = run(lm, request, resolved, allow_mismatch=allow_mismatch)
    if json_out:
        print_json([{"prompt": p, "completion": t} for p, t in zip(prompts, texts)])
        return
    title = ", ".join(f"{a.name}×{s:g}" for a, s in zip(artifacts, strengths)) or "unsteered"
    table = Table(title=title, show_lines=True)
    table.add_column("prompt", style="bold")
    table.add_column("completion")
    for p, t in zip(prompts, texts):
        table.add_row(p, t)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
