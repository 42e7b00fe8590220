"""From per-row steering to applications: normalising what a row gets, routing shared options to
the methods that take them, and grouping rows into one :class:`~steerlab.core.steerer.Application`
per distinct (artifact, options) with per-row strengths."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Union

import torch

from steerlab.core.artifact import Artifact
from steerlab.core.methods import get_method
from steerlab.core.steerer import Application, Prepared, Steer, Steerer, get_steerer
from steerlab.errors import SteerlabError

RowEntry = Union[Steer, Prepared]
"""One steer of a row: as the user gave it, or prepared for a model."""


def as_steer(x: Any) -> RowEntry:
    """Wrap a bare artifact as a strength-1 :class:`Steer`; steers and prepared steers pass."""
    if isinstance(x, (Steer, Prepared)):
        return x
    if isinstance(x, Artifact):
        return Steer(x)
    raise SteerlabError(f"expected an artifact or Steer, got {type(x).__name__}")


def row_steers(row: Any) -> list[RowEntry]:
    """Normalise one row's steering (None, a steer, or a tuple/list of steers) to a list."""
    if row is None:
        return []
    if isinstance(row, (Artifact, Steer, Prepared)):
        return [as_steer(row)]
    if isinstance(row, (list, tuple)):
        return [as_steer(x) for x in row]
    raise SteerlabError(f"cannot steer with a {type(row).__name__}")


def per_row(steering: Any, batch: int) -> list[list[RowEntry]]:
    """Expand generate()'s ``steering`` argument to one list of steers per row.

    A ``list`` means one entry per row (each None, a steer, or a tuple/list of steers to compose);
    anything else (one steer, or a ``tuple`` of steers to compose) applies to every row.
    """
    if isinstance(steering, list):
        if len(steering) != batch:
            raise SteerlabError(
                f"per-row steering has {len(steering)} entries for {batch} prompts; "
                "pass one entry per prompt, or a tuple to compose steers for every row"
            )
        return [row_steers(r) for r in steering]
    shared = row_steers(steering)
    return [shared for _ in range(batch)]


def _fields(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_method(method).options_cls)}


def with_option(rows: Sequence[Sequence[RowEntry]], key: str, value: Any) -> list[list[RowEntry]]:
    """Set option ``key`` on every steer whose method has it; ``value`` may be a per-row list.

    This is how a request-level knob (the API's ``attributes``) becomes an option of the steer
    that takes it (a prepared steer goes back to a plain one, to be prepared again with the new
    value). Raises if no steer in the batch has such an option (e.g. ``attributes``
    without a SteerLM artifact), so a knob is never silently ignored.
    """
    values = value if isinstance(value, list) else [value] * len(rows)
    if len(values) != len(rows):
        raise SteerlabError(f"{len(values)} {key} entries for {len(rows)} prompts")
    used = False
    out = []
    for steers, v in zip(rows, values):
        new: list[RowEntry] = []
        for st in steers:
            if key in _fields(st.artifact.method) and v is not None:
                plain = st.steer if isinstance(st, Prepared) else st
                st = dataclasses.replace(plain, options={**plain.options, key: v})
                used = True
            new.append(st)
        out.append(new)
    if not used:
        raise SteerlabError(f"{key}= needs a steer whose method takes it (e.g. a SteerLM adapter) in steering")
    return out


def route_options(artifacts: Sequence[Artifact], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Split one set of options (a CLI's ``--layers``, ``--opt k=v``) between artifacts of several
    methods: each artifact gets the options its method has. An option no method has goes to every
    artifact, so parsing reports it with a did-you-mean hint instead of dropping it."""
    fields = {a.method: _fields(a.method) for a in artifacts}
    routed: list[dict[str, Any]] = [{} for _ in artifacts]
    for key, value in options.items():
        takers = [i for i, a in enumerate(artifacts) if key in fields[a.method]] or range(len(artifacts))
        for i in takers:
            routed[i][key] = value
    return routed


def _options_key(options: Any) -> Any:
    """Options compared by value where their text says all of them (a method's options dataclass of
    plain values), else by identity (a tensor's text is abridged, so two tensors could print alike)."""
    if dataclasses.is_dataclass(options):
        text = repr(options)
        if "tensor(" not in text and " object at 0x" not in text:
            return ("r", type(options), text)
    return ("i", id(options))


def plan(rows: Sequence[Sequence[RowEntry]]) -> list[tuple[Steerer[Any, Any], Application]]:
    """Group per-row steers into one :class:`Application` per distinct (artifact, options).

    Prepared steers bring their parsed options (and are named in ``Application.prepared``, so
    :func:`~steerlab.core.apply.check` need not validate them again); plain steers are parsed here,
    once per group."""
    batch = len(rows)
    groups: dict[tuple[Any, ...], tuple[Steerer[Any, Any], Application]] = {}
    steerers: dict[str, Steerer[Any, Any]] = {}
    for b, entries in enumerate(rows):
        for entry in entries:
            if isinstance(entry, Prepared):
                # steers prepared apart (one per request, say) with equal options share one
                # application: a method's hooks then run once per step, not once per strength
                key: tuple[Any, ...] = ("p", id(entry.artifact), entry.model_id, entry.allow_mismatch,
                                        _options_key(entry.options))
                steerer, strength = entry.steerer, entry.strength
            else:
                key = ("s", id(entry.artifact), repr(sorted(entry.options.items())))
                if entry.artifact.method not in steerers:
                    steerers[entry.artifact.method] = get_steerer(entry.artifact.method)
                steerer, strength = steerers[entry.artifact.method], float(entry.strength)
            if key not in groups:
                if isinstance(entry, Prepared):
                    app = Application(entry.artifact, entry.options, torch.zeros(batch), prepared=entry)
                else:
                    app = Application(entry.artifact, steerer.parse_options(entry.options), torch.zeros(batch))
                groups[key] = (steerer, app)
            groups[key][1].strengths[b] += strength
    return list(groups.values())
