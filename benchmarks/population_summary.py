"""Where a population's wall time went, from its run folder: env steps per second for the whole population, and
per member the share of the run it spent training (in its trainable) and the share of that spent evaluating.

    python benchmarks/population_summary.py runs/pbt_gpu_2026-...      # prints one JSON object

Reads each member's `result.json` (timestamps, `time_this_iter_s`, `eval/time_s`, env steps); with
`evaluation.asynchronous`, `eval/time_s` is the member's cost (handing over, waiting) and `eval_protocol_s` the
time its evaluation process took. The run's wall time is from the first iteration's start to the last iteration's
end over all members; a member's training share is the sum of its iteration times over that wall time (the rest:
starting, restarts after exploits, waiting).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mapush_rllib.result_keys import (
    ENV_STEPS_THIS_ITERATION,
    EVAL_PROTOCOL_TIME,
    EVAL_TIME,
    ran_evaluation,
    result_value,
)


def summary(run_dir: Path) -> dict:
    members = {}
    starts, ends, total_steps = [], [], 0.0
    for trial in sorted(p for p in run_dir.iterdir() if (p / "result.json").exists()):
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]
        if not rows:
            continue
        starts.append(min(row["timestamp"] - row["time_this_iter_s"] for row in rows))
        ends.append(max(row["timestamp"] for row in rows))
        training_s = sum(row["time_this_iter_s"] for row in rows)
        # every row carries the latest evaluation; it ran in the iteration it names
        evaluations = [row for row in rows if ran_evaluation(row)]
        eval_s = sum(result_value(row, EVAL_TIME) for row in evaluations)
        protocol_s = sum(result_value(row, EVAL_PROTOCOL_TIME, result_value(row, EVAL_TIME)) for row in evaluations)
        steps = float(sum(result_value(row, ENV_STEPS_THIS_ITERATION, 0) for row in rows))
        total_steps += steps
        members[trial.name] = {"iterations": len(rows), "env_steps": steps, "training_s": round(training_s, 1),
                               "eval_s": round(eval_s, 1), "eval_protocol_s": round(protocol_s, 1),
                               "eval_share_of_training": round(eval_s / training_s, 4)}
    wall = max(ends) - min(starts)
    for member in members.values():
        member["training_share_of_wall"] = round(member["training_s"] / wall, 4)
    return {"run": str(run_dir), "wall_s": round(wall, 1), "env_steps": total_steps,
            "env_steps_per_s": round(total_steps / wall), "members": members}


if __name__ == "__main__":
    print(json.dumps(summary(Path(sys.argv[1])), indent=2))
