"""Named artifacts ship with steerlab: every method can be steered by name, no training."""

from __future__ import annotations

import json

import pytest

import steerlab
from steerlab.artifacts import shipped
from steerlab.service import ArtifactStore
from tests.helpers import run


def test_every_built_in_method_ships_an_artifact() -> None:
    methods = {entry.config()["method"] for entry in shipped().values()}
    assert {"vectors", "lm_steer", "steerlm", "dglm"} <= methods


@pytest.mark.parametrize("name", sorted(shipped()))
def test_shipped_artifacts_load_by_name(name: str) -> None:
    art = steerlab.load_artifact(name)
    entry = shipped()[name]
    assert art.method == entry.config()["method"] and art.model is not None
    assert art.model.name == ("qwen2.5-1.5b" if name.endswith("-qwen1.5b") else "smollm2-135m")
    rec = entry.recommended
    steerlab.Steer(art, rec.get("strength", 1.0), rec.get("options", {}))  # the advertised setting is valid
    if entry.companions.get("value_model"):
        from steerlab.methods.steerlm.value_model import ValueModel

        vm = ValueModel.load(entry.companions["value_model"])
        vm.schema.check_same(art.schema, name)


def test_stores_know_shipped_names(tmp_path) -> None:
    assert set(shipped()) <= set(ArtifactStore(allow_paths=False).names())
    assert ArtifactStore(allow_paths=False).get("sentiment-vec").method == "vectors"
    assert not ArtifactStore(shipped=False).names()


def test_cli_lists_the_artifacts(capsys) -> None:
    code, out, err = run(["artifacts", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert {r["name"] for r in rows} == set(shipped()) and all(r["method"] for r in rows)


@pytest.mark.slow
def test_generate_by_name_moves_sentiment(real_lm) -> None:
    from steerlab.scoring.scorers import get_scorer

    entry = shipped()["sentiment-vec"]
    art = steerlab.load_artifact("sentiment-vec")
    prompts = steerlab.load_prompts("neutral")[:8]
    kw = {"max_new_tokens": 20, "temperature": 1.0, "top_p": 0.9, "seed": 0, "progress": False}
    opts = entry.recommended["options"]
    up = steerlab.generate(real_lm, prompts, steerlab.Steer(art, 6.0, opts), **kw)
    down = steerlab.generate(real_lm, prompts, steerlab.Steer(art, -6.0, opts), **kw)
    score = get_scorer("vader")
    assert sum(score(up)) > sum(score(down))


@pytest.mark.slow
def test_shipped_dglm_steers_sentiment_both_ways(real_lm) -> None:
    """The probe's guidance on the proposal reaches the text: guided positive reads more positive
    than guided negative, under the sentiment probe (the artifact's own probe space) and VADER."""
    import numpy as np

    from steerlab.scoring.scorers import get_scorer

    art = steerlab.load_artifact("dglm-smollm2")
    prompts = steerlab.load_prompts("sentiment_neutral")[:8] * 2
    kw = {"max_new_tokens": 20, "temperature": 1.0, "top_p": 0.9, "seed": 0, "progress": False}
    up = steerlab.generate(real_lm, prompts, steerlab.Steer(art, 4.0, {"guide": "sentiment:positive"}), **kw)
    down = steerlab.generate(real_lm, prompts, steerlab.Steer(art, 4.0, {"guide": "sentiment:negative"}), **kw)
    for scorer in ("sentiment", "vader"):
        score = get_scorer(scorer)
        assert np.mean(score(up)) > np.mean(score(down)), scorer


@pytest.mark.slow
def test_shipped_dglm_steers_toxicity_both_ways(real_lm) -> None:
    """The toxicity probe's guidance (covariance step) reaches the text: guided clean reads less
    toxic than guided toxic on the detoxify task's openings, under the toxicity classifier."""
    import numpy as np

    from steerlab.scoring.scorers import get_scorer

    art = steerlab.load_artifact("dglm-smollm2")
    assert art.guide_cov is not None  # the shipped artifact steps along the embedding covariance
    prompts = steerlab.load_prompts("toxic")[:12] * 2
    kw = {"max_new_tokens": 20, "temperature": 1.0, "top_p": 0.9, "seed": 0, "progress": False}
    clean = steerlab.generate(real_lm, prompts, steerlab.Steer(art, 4.0, {"guide": "toxicity:clean"}), **kw)
    toxic = steerlab.generate(real_lm, prompts, steerlab.Steer(art, 4.0, {"guide": "toxicity:toxic"}), **kw)
    score = get_scorer("toxicity")
    assert np.mean(score(clean)) < np.mean(score(toxic))
