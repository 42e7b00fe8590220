"""Store a saved evaluation report's card in an artifact (the harness does this itself with
``--save-card``; this re-reads a report run with ``--no-save-card``):

    python experiments/detox_hard/store_card.py experiments/detox_hard/lmsteer-toxicity.json \
        src/steerlab/artifacts/lmsteer-toxicity
"""

from __future__ import annotations

import json
import sys

from steerlab.core.artifact import update_eval_card
from steerlab.eval.report import EvalReport

report = EvalReport.from_dict(json.loads(open(sys.argv[1]).read()))
update_eval_card(sys.argv[2], {f"eval:{report.task.name}": report.card()})
print(f"stored eval:{report.task.name} in {sys.argv[2]}")
