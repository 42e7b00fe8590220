"""``steerlab serve``: the OpenAI-compatible HTTP server with per-request steering and a console."""

from __future__ import annotations

from pathlib import Path

import typer

from steerlab.cli.common import console, load
from steerlab.defaults import DEFAULT_MODEL
from steerlab.errors import MissingDependencyError, SteerlabError


def serve(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The model to serve."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, help="Port."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="STEERLAB_API_KEY",
                                       help="Bearer token every call must send; admin calls need one."),
    artifact: list[str] = typer.Option([], "--artifact", help="NAME=DIR: serve an artifact directory under NAME "
                                                              "(repeatable; the shipped ones are always there)."),
    default_steer: list[str] = typer.Option([], "--default-steer",
                                            help="Steering for requests that send none: NAME, NAME:STRENGTH or a "
                                                 "JSON steer (repeatable). A request's steering: null turns it off."),
    max_batch: int = typer.Option(32, help="Model rows decoded together."),
    max_queue: int = typer.Option(256, help="Jobs waiting beyond the batch before 429."),
    max_tokens: int = typer.Option(512, help="Cap on max_tokens per choice."),
    max_prompt_tokens: int = typer.Option(2048, help="Longest prompt accepted, in tokens."),
    max_body_bytes: int = typer.Option(1_000_000, help="Largest request body."),
    request_timeout: float = typer.Option(300.0, help="Seconds before a request is cancelled (408)."),
    max_prompts: int = typer.Option(32, help="Prompts in one /v1/completions request."),
    max_stop_chars: int = typer.Option(256, help="Characters per stop sequence (at most 4 sequences)."),
    shutdown_grace: float = typer.Option(30.0, help="Seconds requests in flight may finish after SIGTERM or "
                                                    "Ctrl-C; the rest then end with an error."),
    public_metrics: bool = typer.Option(False, "--public-metrics",
                                        help="Serve /metrics without the API key (it needs the key otherwise)."),
    engine: str = typer.Option("hf", help="Generation engine: hf (steerlab's own) or vllm (vLLM's continuous "
                                         "batching with the steerlab plugin; needs steerlab[vllm])."),
    vllm_eager: bool = typer.Option(False, "--vllm-eager", help="With --engine vllm: skip vLLM's compilation "
                                                                "(starts sooner, decodes slower; same results)."),
) -> None:
    """Serve MODEL over an OpenAI-compatible API (/v1/completions, /v1/chat/completions) where each
    request carries its own steering, with a web console at /."""
    try:
        import uvicorn

        from steerlab.server import ServerConfig, create_app
    except ImportError:
        raise MissingDependencyError("the server needs its extra: pip install 'steerlab[serve]'") from None
    from steerlab.server.config import parse_default_steer
    from steerlab.service.resolve import ArtifactStore

    named = {}
    for item in artifact:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SteerlabError(f"--artifact takes NAME=DIR, got {item!r}")
        if not Path(folder).is_dir():
            raise SteerlabError(f"--artifact {name}: {folder!r} is not a directory")
        named[name] = folder
    config = ServerConfig(host=host, port=port, api_key=api_key, max_batch=max_batch, max_queue=max_queue,
                          max_tokens=max_tokens, max_prompt_tokens=max_prompt_tokens, max_body_bytes=max_body_bytes,
                          request_timeout=request_timeout, max_prompts=max_prompts, max_stop_chars=max_stop_chars,
                          shutdown_grace=shutdown_grace, public_metrics=public_metrics,
                          default_steering=parse_default_steer(default_steer))
    store = ArtifactStore(named, allow_paths=False)
    for name in named:
        store.get(name)  # verify at start
    if engine not in ("hf", "vllm"):
        raise typer.BadParameter(f"engine must be hf or vllm, got {engine!r}", param_hint="--engine")
    from steerlab.server.lifecycle import bind, graceful_server

    sock = bind(host, port)  # a port in use is reported now, not after the model has loaded
    gen_engine = None
    if engine == "vllm":
        from steerlab.models.weightless import load_weightless
        from steerlab.vllm.engine import VllmEngine
        from steerlab.vllm.serving import VllmServingEngine

        with console.status("starting vLLM"):  # first: a hub model is downloaded here
            gen_engine = VllmServingEngine(VllmEngine(model, dtype="float32", enable_lora=True, max_num_seqs=max_batch,
                                                      enforce_eager=vllm_eager or None), max_queue=max_queue)
        lm = load_weightless(model)  # vLLM holds the weights; steerlab formats, tokenises and checks
    else:
        lm = load(model)
    app = create_app(lm, config=config, store=store, engine=gen_engine)
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        console.print("[yellow]warning: listening beyond this machine without --api-key[/yellow]")
    console.print(f"serving {lm.name} at http://{host}:{port}/ (console), API at /v1, docs at /docs")
    server = graceful_server(uvicorn.Config(app, host=host, port=port, log_level="warning"), app.state.drain,
                             shutdown_grace)
    server.run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
