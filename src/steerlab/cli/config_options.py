"""Build CLI options from a method's training-config dataclass, so each knob is declared once
(type, default and help text in the dataclass) and the CLI cannot drift from the library."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

import typer


def config_command(config_cls: type[Any], run: Callable[..., None], doc: str) -> Callable[..., None]:
    """A typer command whose options are ``run``'s own parameters plus one ``--field-name`` option
    per field of ``config_cls``; ``run`` receives the built config as ``config=``."""
    hints = typing.get_type_hints(config_cls)
    fields = dataclasses.fields(config_cls)
    run_hints = typing.get_type_hints(run)  # real types: string annotations would all read as str
    own = [p.replace(annotation=run_hints.get(name, p.annotation))
           for name, p in inspect.signature(run).parameters.items() if name != "config"]
    extra = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                          default=typer.Option(f.default, f"--{f.name.replace('_', '-')}",
                                               help=f.metadata.get("help", "")))
        for f in fields
    ]

    def command(**kwargs: Any) -> None:
        config = config_cls(**{f.name: kwargs.pop(f.name) for f in fields})
        run(config=config, **kwargs)

    command.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra)
    command.__doc__ = doc
    command.__name__ = run.__name__
    return command
