"""The ``steerlab`` command: one typer app, one module per verb, one-line errors for bad input.

Errors a user can cause (:class:`~steerlab.errors.SteerlabError`) print as ``error: ...`` with exit
code 2 and no traceback; set ``STEERLAB_DEBUG=1`` to see the traceback. Ctrl-C exits 130 with one
line saying what was kept (e.g. the checkpoint a training run resumes from).

The CLI is offline by default: ``HF_HUB_OFFLINE=1`` is set before anything imports huggingface_hub
(which reads it once, at import), unless the user set ``HF_HUB_OFFLINE`` themselves.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import typer

from steerlab.errors import Interrupted, SteerlabError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Steer language models at inference time, measurably.")


_interrupts: list[KeyboardInterrupt] = []
"""The Ctrl-C a command raised: typer turns it into exit code 130 and drops the exception, which
carries what the job kept (:class:`~steerlab.errors.Interrupted`)."""


def _remembering(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # typer reads the signature through __wrapped__
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as e:
            _interrupts.append(e)
            raise

    return run


def _wrap_commands(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.callback is not None:
            info.callback = _remembering(info.callback)
    if typer_app.registered_callback is not None and typer_app.registered_callback.callback is not None:
        typer_app.registered_callback.callback = _remembering(typer_app.registered_callback.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _wrap_commands(group.typer_instance)


def _register() -> None:
    from steerlab.cli import (
        artifacts,
        bench,
        compare,
        demo,
        dglm,
        evaluate,
        extract,
        generate,
        gguf,
        inspect,
        lm_steer,
        models,
        serve,
        steerlm,
        sweep,
    )

    if app.registered_commands:  # already registered (main called twice in one process)
        return
    for module in (models, artifacts, extract, lm_steer, steerlm, generate, inspect, gguf, sweep, evaluate, compare,
                   demo, bench, serve, dglm):
        module.register(app)
    _wrap_commands(app)


def _one_line(message: str) -> str:
    """A message as one line (user data quoted inside it may hold line breaks)."""
    return " ".join(message.splitlines())


def _interrupted(e: BaseException) -> None:
    """Exit 130 with one line: what the interrupted job kept (its message), else that nothing was."""
    kept = str(e) if isinstance(e, Interrupted) and str(e) else "nothing was saved"
    print(f"interrupted: {_one_line(kept)}", file=sys.stderr)
    sys.exit(130)


def _click_exceptions() -> Any:
    """The exception classes the CLI framework raises: recent typer vendors click as ``typer._click``."""
    try:
        from typer._click import exceptions as vendored
    except ImportError:  # typer on top of the click package
        import click.exceptions

        return click.exceptions
    return vendored


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    click = _click_exceptions()
    _register()
    _interrupts.clear()
    try:
        rc = app(args=argv, standalone_mode=False)
    except SteerlabError as e:
        if os.environ.get("STEERLAB_DEBUG"):
            raise
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        _interrupted(e)
    except typer.Abort as e:  # EOF (and Ctrl-C in some click versions) arrives as Abort
        cause = e.__cause__ or e.__context__
        if isinstance(cause, KeyboardInterrupt):
            _interrupted(cause)
        sys.exit(1)
    except click.ClickException as e:  # usage errors arrive here in standalone_mode=False
        if isinstance(e, click.NoArgsIsHelpError):
            e.show()  # the help text
        else:
            hint = f" (see: {e.ctx.command_path} --help)" if getattr(e, "ctx", None) is not None else ""
            print(f"error: {_one_line(e.format_message())}{hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    if _interrupts:  # typer returned 130 for a Ctrl-C
        _interrupted(_interrupts[-1])
    if isinstance(rc, int) and rc:  # typer returns the exit code of ctx.exit(n) instead of raising
        sys.exit(rc)


if __name__ == "__main__":
    main()
