"""The ``steerlab`` command: one typer app, one module per verb, one-line errors for bad input.

Errors a user can cause (:class:`~steerlab.errors.SteerlabError`) print as ``error: ...`` with exit
code 2 and no traceback; set ``STEERLAB_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from steerlab.errors import SteerlabError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Steer language models at inference time, measurably.")


def _register() -> None:
    from steerlab.cli import bench, demo, evaluate, extract, generate, gguf, inspect, lm_steer, models, steerlm, sweep

    for module in (models, extract, lm_steer, steerlm, generate, inspect, gguf, sweep, evaluate, demo, bench):
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except SteerlabError as e:
        if os.environ.get("STEERLAB_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here in standalone_mode=False
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
