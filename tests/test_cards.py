"""The catalogue reads its recommendations and summaries from each artifact's eval card."""

from __future__ import annotations

import json

from steerlab.artifacts import cards, shipped
from tests.helpers import run


def _card(task: str, sweep: list[tuple[float, float, float]], unsteered: float, chosen: float | None,
          best: float) -> dict:
    return {"task": task, "options": {"layers": [3]},
            "recommended": {"strength": chosen, "budget": 0.1, "best_unconstrained": best},
            "sweep": [{"strength": s, "options": {"layers": [3]}, "success": ok, "perplexity": ppl}
                      for s, ok, ppl in sweep],
            "unsteered": {"success": unsteered, "perplexity": 100.0},
            "prompting": {"success": unsteered + 0.05, "perplexity": 104.0}}


def test_the_start_is_the_within_budget_setting_that_gains_most() -> None:
    card = {"eval:pos": _card("pos", [(2, 0.55, 105), (6, 0.80, 300)], 0.50, 2, 6),
            "eval:neg": _card("neg", [(-2, 0.60, 108), (-6, 0.70, 250)], 0.30, -2, -6)}
    rec = cards.primary(card)
    assert rec is not None and rec.task == "neg" and rec.strength == -2 and rec.within_budget
    assert abs(rec.gain - 0.30) < 1e-9 and rec.options == {"layers": [3]}


def test_with_nothing_within_budget_the_start_is_the_most_successful_and_says_so() -> None:
    card = {"eval:pos": _card("pos", [(1, 0.60, 190), (4, 0.86, 176)], 0.68, None, 4)}
    rec = cards.primary(card)
    assert rec is not None and rec.strength == 4 and not rec.within_budget
    assert "over the fluency budget" in rec.describe()
    assert "none within +10% ppl" in (cards.summary(card) or "")


def test_with_no_fluent_setting_the_start_is_the_gentlest_that_gains_and_says_so() -> None:
    card = {"eval:pos": _card("pos", [(2, 0.52, 2900), (4, 0.03, 900), (6, 0.68, 4500)], 0.45, None, 6)}
    rec = cards.primary(card)
    assert rec is not None and rec.strength == 2 and not rec.within_budget and not rec.fluent
    assert "no fluent setting measured" in rec.describe()
    card["eval:pos"]["sweep"].append({"strength": 1, "options": {}, "success": 0.50, "perplexity": 150})
    rec = cards.primary(card)
    assert rec is not None and rec.strength == 1 and rec.fluent and not rec.within_budget


def test_a_card_without_tasks_keeps_its_own_summary() -> None:
    assert cards.primary({"summary": "monotone"}) is None
    assert cards.summary({"summary": "monotone"}) == "monotone"
    assert cards.summary({}) is None


def test_every_measured_shipped_artifact_is_listed_with_its_card(capsys) -> None:
    code, out, err = run(["artifacts", "--json"], capsys)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    for name, entry in shipped().items():
        if cards.task_cards(entry.eval_card):
            assert rows[name]["summary"] and rows[name]["by_task"], name
    dglm = rows["dglm-smollm2"]
    assert dglm["recommended"]["strength"] == 4  # where its card shows it works, not the catalogue's 1


def test_the_comparison_page_is_what_the_command_writes(tmp_path, capsys) -> None:
    from tests.helpers import ROOT

    code, _, err = run(["compare", "--out", str(tmp_path / "c.md")], capsys)
    assert code == 0, err
    page = (tmp_path / "c.md").read_text()
    assert page == (ROOT / "docs" / "comparison.md").read_text(), "run: steerlab compare --out docs/comparison.md"
    assert page.count("| sentiment-positive |") >= 3 and "beats prompting" in page


def test_the_verdict_uses_intervals_where_the_card_has_them() -> None:
    card = {"eval:pos": _card("pos", [(2, 0.90, 105)], 0.50, 2, 2)}
    card["eval:pos"]["sweep"][0].update(success_ci=[0.85, 0.95], dist3=0.8)
    card["eval:pos"]["prompting"]["success_ci"] = [0.45, 0.60]
    table = cards.comparison([("a", "vectors", "m", card)])
    assert "yes (intervals separate)" in table and "0.80" in table
    card["eval:pos"]["prompting"]["success_ci"] = [0.45, 0.88]
    assert "intervals overlap" in cards.comparison([("a", "vectors", "m", card)])
    card["eval:pos"]["sweep"][0]["vs_prompting"] = [0.4, 0.05, 0.7]  # the paired interval decides
    assert "yes (paired difference [+5, +70] points)" in cards.comparison([("a", "vectors", "m", card)])
    card["eval:pos"]["sweep"][0]["vs_prompting"] = [0.4, -0.05, 0.7]
    assert "yes, point estimate (paired difference [-5, +70] points)" in cards.comparison([("a", "vectors", "m", card)])


def test_a_setting_names_its_layers_operator_and_positions() -> None:
    """The strength alone misleads where a clamp's target carries the direction."""
    card = {"options": {"layers": [15]}}
    assert cards.setting({"strength": -1.0, "options": {}}, card) == "x-1 L15"
    clamp = {"strength": 1.0, "options": {"layers": [15], "operator": "clamp", "clamp_value": -14.0}}
    assert cards.setting(clamp, card) == "x1 L15 clamp to -14"
    spread = {"strength": 3.0, "options": {"layers": [8, 10, 12], "positions": "generated"}}
    assert cards.setting(spread, {}) == "x3 L8+10+12 generated"
    assert cards.setting({"strength": 2.0, "options": {"operator": "ablate", "positions": 5}}, {}) == "x2 ablate from 5"
    page = cards.comparison([("a", "vectors", "m", {"eval:neg": _card("neg", [(1, 0.6, 100)], 0.3, 1, 0.5)})])
    assert "| x1 L3: 60%" in page and "| x1 L3: 60%, 100 |" in page  # within budget, and best overall


def test_inspect_reads_the_card_per_task_not_as_a_raw_dict(capsys) -> None:
    card = {"eval:pos": _card("pos", [(2, 0.60, 105), (6, 0.80, 300)], 0.50, 2, 6),
            "eval:neg": _card("neg", [(-6, 0.70, 250)], 0.30, None, -6)}
    card["eval:pos"]["protocol"] = {"n_prompts": 100, "samples": 4, "max_new_tokens": 20}
    pos, neg = sorted(cards.lines(card), reverse=True)
    assert pos.startswith("pos: 80% at x6 L3") and "best within +10% ppl: x2 L3 = 60%" in pos
    assert "beats prompting: yes, point estimate" in pos and pos.endswith("(100 prompts x 4 x 20 tokens)")
    assert "none within +10% ppl" in neg and "beats prompting" not in neg and "? prompts" in neg
    assert cards.lines({"summary": "monotone"}) == ["monotone"] and cards.lines({}) == []
    code, out, err = run(["inspect", str(shipped()["lmsteer-sentiment"].path)], capsys)
    assert code == 0, err
    assert "eval card: sentiment-negative:" in out and "{'task'" not in out


def test_the_list_is_one_line_per_artifact_at_80_columns_and_a_name_shows_its_card(capsys, monkeypatch) -> None:
    from steerlab.cli.common import out

    monkeypatch.setattr(out, "_width", 80)
    code, text, err = run(["artifacts"], capsys)
    assert code == 0, err
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for name, entry in shipped().items():  # one line each: name, method, model, the setting to start from
        (line,) = [ln for ln in lines if ln.startswith(name + " ")]
        assert entry.config()["method"] in line and f"x{float(entry.recommended.get('strength', 1)):g}" in line
    code, text, err = run(["artifacts", "sentiment-vec"], capsys)
    assert code == 0, err
    assert "method=vectors" in text and "eval card: sentiment-positive" in text
    code, same, err = run(["inspect", "sentiment-vec"], capsys)  # inspect takes a shipped name too
    assert code == 0 and same == text
    code, _, err = run(["artifacts", "no-such-thing"], capsys)
    assert code != 0 and "shipped:" in err
