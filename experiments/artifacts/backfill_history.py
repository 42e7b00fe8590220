"""Give a shipped LM-Steer artifact trained before loss histories were kept the history of a re-run.

    python experiments/artifacts/backfill_history.py SHIPPED LONGER_RUN

LONGER_RUN is a run of the same settings, data and seed for at least as many steps (e.g.
``lmsteer_long.sh``'s 1,200 steps against the shipped 300): training is deterministic, so its
first N steps are the shipped run's. The script checks that before writing (the loss at step 1
and the mean of the last 50 of N steps must agree with the shipped record to 1e-4, and every
training setting but ``n_steps`` must be equal), then stores the first N losses as the shipped
record's ``loss_history`` with ``loss_history_from`` naming where they came from. The weights
are not touched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from steerlab.core.artifact import CONFIG_NAME, read_config
from steerlab.core.atomic import atomic_file

SAME = ("adaptor_class", "num_steers", "dummy_steer", "training_steer", "epsilon", "init_var",
        "regularization", "lr", "batch_size", "max_length", "seed")


def main(shipped: Path, longer: Path) -> None:
    doc = read_config(shipped)
    mine = doc["config"]["training"]
    theirs = read_config(longer)["config"]["training"]
    n = int(mine["n_steps"])
    history = theirs["loss_history"][:n]
    differ = [k for k in SAME if mine.get(k) != theirs.get(k)]
    if differ:
        sys.exit(f"not the same run: {', '.join(differ)} differ")
    if mine.get("loss_history"):
        sys.exit(f"{shipped} already stores its loss history")
    if len(history) < n:
        sys.exit(f"{longer} ran {len(history)} steps, fewer than {n}")
    last = sum(history[-50:]) / len(history[-50:])
    if abs(history[0] - mine["loss_first"]) > 1e-4 or abs(last - mine["loss_last_50"]) > 1e-4:
        sys.exit(f"losses disagree: first {history[0]} vs {mine['loss_first']}, "
                 f"last 50 {last} vs {mine['loss_last_50']}")
    mine["loss_history"] = history
    mine["loss_history_from"] = (f"a re-run of the same settings, data and seed ({theirs['n_steps']} steps); "
                                 f"step 1 and the last-50 mean agree with this run's record to 1e-4")
    with atomic_file(shipped / CONFIG_NAME, overwrite=True) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{shipped}: {n} losses from {longer} (first {history[0]:.4f}, last 50 {last:.4f})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
