"""Named artifacts that ship with steerlab for the default model, so a newcomer steers with every
method before training anything::

    steerlab artifacts                                          # list them with their eval cards
    steerlab generate -p "The film" --steer lmsteer-sentiment --value 5
    steerlab.load_artifact("sentiment-vec")

``catalogue.json`` beside this file lists each name with a one-line description, the setting to
start from (strength and options) and companions (a SteerLM adapter's value model). The method,
model and eval card come from the artifact itself. Artifacts are plain directories (JSON +
safetensors), loaded like any other; a name never triggers a download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

CATALOGUE = "catalogue.json"


@dataclass(frozen=True)
class ShippedArtifact:
    """One catalogue entry."""

    name: str
    path: Path
    description: str
    recommended: dict[str, Any] = field(default_factory=dict)  # {"strength": 6, "options": {...}}
    companions: dict[str, str] = field(default_factory=dict)  # role -> shipped name or folder

    def config(self) -> dict[str, Any]:
        """The artifact's ``steer_config.json`` (method, model, eval card, ...)."""
        doc: dict[str, Any] = json.loads((self.path / "steer_config.json").read_text(encoding="utf-8"))
        return doc


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
