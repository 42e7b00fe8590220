"""Named artifacts that ship with steerlab for the default model, so a newcomer steers with every
method before training anything::

    steerlab artifacts                                          # list them with their eval cards
    steerlab generate -p "The film" --steer lmsteer-sentiment --value 5
    steerlab.load_artifact("sentiment-vec")

``catalogue.json`` beside this file lists each name with a one-line description, a default
setting (strength and options) and companions (a SteerLM adapter's value model). The method,
model and eval card come from the artifact itself, and so does the setting to start from where
the card measured one (:mod:`steerlab.artifacts.cards`). Artifacts are plain directories (JSON +
safetensors), loaded like any other; a name never triggers a download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from steerlab.artifacts import cards

CATALOGUE = "catalogue.json"


@dataclass(frozen=True)
class ShippedArtifact:
    """One catalogue entry."""

    name: str
    path: Path
    description: str
    default: dict[str, Any] = field(default_factory=dict)  # the catalogue's {"strength", "options"}
    companions: dict[str, str] = field(default_factory=dict)  # role -> shipped name or folder

    def config(self) -> dict[str, Any]:
        """The artifact's ``steer_config.json`` (method, model, eval card, ...)."""
        doc: dict[str, Any] = json.loads((self.path / "steer_config.json").read_text(encoding="utf-8"))
        return doc

    @property
    def eval_card(self) -> dict[str, Any]:
        card = self.config().get("eval_card") or {}
        return dict(card) if isinstance(card, dict) else {}

    @property
    def recommended(self) -> dict[str, Any]:
        """The setting to start from: from the eval card where it measured one
        (:func:`~steerlab.artifacts.cards.primary`, with the task it serves), else the catalogue's
        default (methods no harness task measures, such as SteerLM's knobs)."""
        rec = cards.primary(self.eval_card)
        if rec is None:
            return dict(self.default)
        options = {**self.default.get("options", {}), **rec.options}
        return {"strength": rec.strength, "options": options, "task": rec.task, "within_budget": rec.within_budget,
                "fluent": rec.fluent}


def root() -> Path:
    """The folder holding the shipped artifacts."""
    return Path(str(resources.files("steerlab.artifacts")))


@lru_cache(maxsize=1)
def shipped() -> dict[str, ShippedArtifact]:
    """Every shipped artifact by name."""
    doc = json.loads((root() / CATALOGUE).read_text(encoding="utf-8"))
    return {name: ShippedArtifact(name, root() / entry["path"], entry["description"], entry.get("recommended", {}),
                                  entry.get("companions", {}))
            for name, entry in doc.items()}


def shipped_path(name: str) -> Path | None:
    """The directory of the shipped artifact (or companion folder) called ``name``, else None."""
    entry = shipped().get(name)
    if entry is not None:
        return entry.path
    for art in shipped().values():
        for folder in art.companions.values():
            if folder == name and (root() / folder).is_dir():
                return root() / folder
    return None
