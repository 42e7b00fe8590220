"""The ``steerlab`` command: one typer app, one module per verb, one-line errors for bad input.

Errors a user can cause (:class:`~steerlab.errors.SteerlabError`) print as ``error: ...`` with exit
code 2 and no traceback; set ``STEERLAB_DEBUG=1`` to see the traceback. Ctrl-C exits 130 with one
line saying what was kept (e.g. the checkpoint a training run resumes from).

The CLI is offline by default: ``HF_HUB_OFFLINE=1`` is set before anything imports huggingface_hub
(which reads it once, at import), unless the user set ``HF_HUB_OFFLINE`` themselves.
"""

from __future__ import annotations

import os
import sys

import typer

from steerlab.errors import Interrupted, SteerlabError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Steer language models at inference time, measurably.")


def _register() -> None:
    from steerlab.cli import bench, demo, evaluate, extract, generate, gguf, inspect, lm_steer, models, steerlm, sweep

    for module in (models, extract, lm_steer, steerlm, generate, inspect, gguf, sweep, evaluate, demo, bench):
        module.register(app)


def _interrupted(e: BaseException) -> None:
    """Exit 130 with one line: what the interrupted job kept (its message), else that nothing was."""
    kept = str(e) if isinstance(e, Interrupted) and str(e) else "interrupted; nothing was saved"
    print(f"interrupted: {kept}", file=sys.stderr)
    sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import click

    _register()
    try:
        rc = app(args=argv, standalone_mode=False)
    except SteerlabError as e:
        if os.environ.get("STEERLAB_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        _interrupted(e)
    except click.exceptions.Abort as e:  # click turns Ctrl-C into Abort
        cause = e.__cause__ or e.__context__
        if isinstance(cause, KeyboardInterrupt):
            _interrupted(cause)
        sys.exit(1)
    except click.exceptions.ClickException as e:  # usage errors arrive here in standalone_mode=False
        e.show()
        sys.exit(e.exit_code)
    if isinstance(rc, int) and rc:  # click returns the exit code of ctx.exit(n) instead of raising
        sys.exit(rc)


if __name__ == "__main__":
    main()
