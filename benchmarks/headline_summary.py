"""Issue 17's arms in one table: each arm's own evaluations during training and its final calculator evaluation.

Reads the folders that `benchmarks/headline_arms.sh` packs (`<arm>/` run folders and `<arm>.eval.json`, or one
`<arm>.member_<k>.eval.json` per member of a population), one or more rounds, and prints a markdown table;
`--csv` also writes every evaluation row (arm, iteration, env steps, wall time, success, freeloading index,
contribution balance), the curves behind the table.

    python benchmarks/headline_summary.py round1/ round2/ --csv curves.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from population.result_keys import ENV_STEPS, EVAL, ran_evaluation, result_value

TEAM_KEYS = ("success_rate", "freeloading_index", "contribution_balance")


def evaluation_rows(arm_dir: Path, member: str = "*") -> list[dict]:
    """A member's own evaluations, read from its result.json (one row per evaluated iteration; none when the run
    folder is not there, as in the committed results, which keep only the final evaluations)."""
    rows = []
    for line in "".join(path.read_text() for path in arm_dir.glob(f"*/member_{member}_*/result.json")).splitlines():
        result = json.loads(line)
        if ran_evaluation(result):
            evaluation = result[EVAL]
            rows.append({
                "iteration": result["training_iteration"],
                "env_steps": int(result_value(result, ENV_STEPS)),
                "time_s": round(result["time_total_s"]),
                **{key: round(evaluation[key], 3) for key in TEAM_KEYS},
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="+", type=Path)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    print("| arm | env steps | own evaluations: success (env steps) | full task: success | freeloading | balance |")
    print("|---|---:|---|---:|---:|---:|")
    curves = []
    for folder in args.rounds:
        for final in sorted(folder.glob("*.eval.json")):
            arm = final.name.removesuffix(".eval.json")
            run, _, member = arm.partition(".member_")  # a population's member k: <run>.member_<k>
            rows = evaluation_rows(folder / run, member or "*")
            curves += [{"arm": arm, **row} for row in rows]
            evaluation = json.loads(final.read_text())
            own = ", ".join(f"{row['success_rate']:.2f} ({row['env_steps'] / 1e6:.1f} M)" for row in rows)
            steps = f"{rows[-1]['env_steps'] / 1e6:.1f} M" if rows else "?"
            print(f"| {arm} | {steps} | {own} | {evaluation['success_rate']:.2f} | "
                  f"{evaluation['freeloading_index']:.2f} | {evaluation['contribution_balance']:.2f} |")
    if args.csv and curves:
        with args.csv.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(curves[0]))
            writer.writeheader()
            writer.writerows(curves)


if __name__ == "__main__":
    main()
