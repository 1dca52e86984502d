"""Every own evaluation of a headline run, one row each: what `benchmarks/headline_seed.sh` packs (`seed_<k>/` with
`member_<i>/result.json`) and its `wall.txt`, as the `curves.csv` committed beside each seed's held-out results.

    python benchmarks/headline_curves.py seed_2/ --wall wall.txt > curves.csv

`wall_s` is the time since `population.run` was launched, counting only the time inside the device calls (the
gap between the `start` and the `resume` call is left out), so it reads against the issue's 15-minute budget;
without `--wall` it is Tune's `time_total_s` of the member. The live values are those the member trained with
(`live_settings`): `own_push` of agent 0 (one value for both robots: pbt.shared_reward_terms) and each policy's
entropy coefficient.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from mapush_rllib.task.config import AGENT_IDS
from mapush_rllib.training import SEPARATE_POLICY_IDS
from population.report import load_members
from population.result_keys import (
    ENV_STEPS,
    EVAL_CONTRIBUTION_BALANCE,
    EVAL_FINISH_TIME,
    EVAL_FREELOADING_INDEX,
    EVAL_SUCCESS_RATE,
    EVAL_TIME,
    LIVE_SETTINGS,
    SCORE,
    ran_evaluation,
    result_value,
)

COLUMNS = ("member", "iteration", "env_steps", "wall_s", "success_rate", "contribution_balance",
           "freeloading_index", "finish_time_s", "score", "eval_time_s", "own_push", "entropy_0", "entropy_1")
CALL = re.compile(r"^(\w+): population.run exit \d+ .*, wall (\d+) s, launched (\d+)$")


def device_calls(wall_txt: Path) -> list[tuple[float, float]]:
    """[(launch epoch s, wall s)] of the calls in `wall.txt`, in order."""
    calls = [CALL.match(line.strip()) for line in wall_txt.read_text().splitlines()]
    found = [(float(match[3]), float(match[2])) for match in calls if match]
    if not found:
        sys.exit(f"{wall_txt}: no line 'PHASE: population.run exit N ..., wall S s, launched T' (headline_seed.sh)")
    return found


def run_wall_s(timestamp: float, calls: list[tuple[float, float]]) -> float:
    """Seconds since the first launch, less the gaps between calls."""
    before = 0.0
    for launched, wall in calls:
        if timestamp <= launched + wall:
            return before + timestamp - launched
        before += wall
    return before


def rows(pack: Path, calls: list[tuple[float, float]] | None) -> list[dict]:
    out = []
    for member in load_members(pack):
        for result in filter(ran_evaluation, member.rows):
            live = result.get(LIVE_SETTINGS, {})
            wall = run_wall_s(result["timestamp"], calls) if calls else result["time_total_s"]
            out.append({
                "member": member.directory.name,
                "iteration": result["training_iteration"],
                "env_steps": int(result_value(result, ENV_STEPS)),
                "wall_s": round(wall),
                "success_rate": round(result_value(result, EVAL_SUCCESS_RATE), 4),
                "contribution_balance": round(result_value(result, EVAL_CONTRIBUTION_BALANCE, float("nan")), 4),
                "freeloading_index": round(result_value(result, EVAL_FREELOADING_INDEX), 4),
                "finish_time_s": round(result_value(result, EVAL_FINISH_TIME), 4),
                "score": round(result_value(result, SCORE, float("nan")), 4),
                "eval_time_s": round(result_value(result, EVAL_TIME), 1),
                "own_push": live.get("reward_scales", {}).get(AGENT_IDS[0], {}).get("own_push"),
                **{f"entropy_{k}": live.get(policy, {}).get("entropy_coeff")
                   for k, policy in enumerate(SEPARATE_POLICY_IDS)},
            })
    return sorted(out, key=lambda row: (row["member"], row["iteration"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pack", type=Path, help="seed_<k>/ of headline_seed.sh (member_<i>/result.json)")
    parser.add_argument("--wall", type=Path, help="its wall.txt: wall_s counts the device calls' time")
    args = parser.parse_args()
    found = rows(args.pack, device_calls(args.wall) if args.wall else None)
    if not found:
        sys.exit(f"{args.pack}: no member_*/result.json with an evaluation")
    writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(found)


if __name__ == "__main__":
    main()
