"""Curriculum vs no curriculum on the embedded simulator: same experiment, same env-step budget, one run per arm.

    python benchmarks/curriculum_comparison.py --env-steps 10000000 --time-s 1140 \\
        --storage runs/curriculum_comparison --out benchmarks/curriculum_comparison \\
        [--arm 'curriculum_4_levels_stay:curriculum.num_levels=4;curriculum.top_level=stay'] \\
        [--arm 'no_curriculum_seed1:curriculum.enabled=false;run.seed=1']
    python benchmarks/curriculum_comparison.py --seeds 0 1 2 --prefix sparse_ \\
        --setting rewards.scales.distance_to_target=0.0 --out benchmarks/curriculum_comparison_sparse

Runs `python -m population.run CONFIG --set ...` once per arm (and seed), one after the other, everything else
equal, each until `--env-steps` env steps or `--time-s` seconds of training, whichever comes first.
The default arms are `curriculum` (the config's curriculum) and `no_curriculum` (`curriculum.enabled=false`);
`--arm 'NAME:KEY=VALUE;...'` adds one, `--setting KEY=VALUE` applies to every arm, `--seeds` runs each arm once
per seed (run `<prefix><arm>_seed<k>`) and adds the mean over seeds. `--report-only` reads existing runs.
Writes `<out>.csv` (one row per iteration and run) and `<out>.md` (the commands, the curves at common env-step
marks, the final numbers).

The number compared is `curriculum/full_task_success_rate`: the success rate of the last
`stats_window_episodes` episodes of the evaluation slice, the envs that always run the full MAPush task
in every arm. `env_runners/mapush/success_rate` is over all envs' episodes: with a curriculum that mixes
levels, so only the no-curriculum arm's is a full-task number (over more episodes than the slice's).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from population import result_keys as keys

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ARMS = {"curriculum": ["curriculum.enabled=true"], "no_curriculum": ["curriculum.enabled=false"]}
REACHED = 0.5  # the final table says when each run's full-task success first reached this
COLUMNS = ("arm", "iteration", "env_steps", "time_s", "full_task_success_rate", "full_task_episodes",
           "level_mean", "level_max", "all_envs_success_rate")


def parse_arm(text: str) -> tuple[str, list[str]]:
    """'NAME:KEY=VALUE;...' -> (NAME, settings); the curriculum is on unless the arm sets curriculum.enabled."""
    name, _, settings = text.partition(":")
    settings = list(filter(None, settings.split(";")))
    enabled = [] if any(s.startswith("curriculum.enabled=") for s in settings) else ["curriculum.enabled=true"]
    return name, [*enabled, *settings]


def runs_of(arms: dict[str, list[str]], args: argparse.Namespace) -> dict[str, tuple[str, list[str]]]:
    """Run name -> (arm, settings): one run per arm, or one per arm and seed with `--seeds`."""
    if not args.seeds:
        return {args.prefix + arm: (arm, settings) for arm, settings in arms.items()}
    return {f"{args.prefix}{arm}_seed{seed}": (arm, [*settings, f"run.seed={seed}"])
            for arm, settings in arms.items() for seed in args.seeds}


def command(config: str, name: str, settings: list[str], args: argparse.Namespace) -> list[str]:
    """The run's command; the arm's settings come last, so an arm may override run.stop (or anything else)."""
    sets = [f"run.name={name}", f"run.stop={{env_steps: {args.env_steps}, time_s: {args.time_s}}}",
            *args.setting, *settings]
    return [sys.executable, "-m", "population.run", config, "--storage", args.storage,
            *[arg for setting in sets for arg in ("--set", setting)]]


def newest_trial(storage: Path, name: str) -> Path:
    """The newest trial directory of run `name`: in `<storage>/<name>_<date>/` (or `<storage>/<name>/`)."""
    stamped = re.compile(re.escape(name) + r"(_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(_\d+)?)?")
    runs = [path for path in storage.iterdir() if stamped.fullmatch(path.name)]
    trials = [trial for run in runs for trial in run.glob("member_*")]
    if not trials:
        raise SystemExit(f"error: no trial of run {name!r} under {storage}")
    return max(trials, key=lambda path: path.stat().st_mtime)


def rows_of(trial_dir: Path, arm: str) -> list[dict]:
    rows = []
    for line in (trial_dir / "result.json").read_text().splitlines():
        result = json.loads(line)
        curriculum = result.get(keys.CURRICULUM, {})
        rows.append({
            "arm": arm,
            "iteration": result["training_iteration"],
            "env_steps": int(keys.result_value(result, keys.ENV_STEPS)),
            "time_s": round(result["time_total_s"], 1),
            "full_task_success_rate": curriculum.get("full_task_success_rate", math.nan),
            "full_task_episodes": curriculum.get("full_task_episodes", math.nan),
            "level_mean": curriculum.get("level_mean", math.nan),
            "level_max": curriculum.get("level_max", math.nan),
            "all_envs_success_rate": keys.result_value(result, keys.SUCCESS_RATE, math.nan),
        })
    return rows


def at_steps(rows: list[dict], steps: int) -> dict:
    """The last row at or before `steps` env steps (empty before the first and after the run's end)."""
    before = [row for row in rows if row["env_steps"] <= steps]
    return before[-1] if before and steps <= rows[-1]["env_steps"] else {}


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(curves: dict[str, list[dict]], key: str, marks: list[int], digits: int) -> list[str]:
    """Markdown table: one row per env-step mark, one column per arm."""
    lines = ["| env steps | " + " | ".join(curves) + " |", "|---:|" + "---:|" * len(curves)]
    for mark in marks:
        cells = [fmt(at_steps(rows, mark).get(key), digits) for rows in curves.values()]
        lines.append(f"| {mark:,} | " + " | ".join(cells) + " |")
    return lines


def runs_of_arm(runs: dict[str, tuple[str, list[str]]], arm: str) -> list[str]:
    return [run for run, (of, _) in runs.items() if of == arm]


def mean_over_seeds(curves: dict[str, list[dict]], runs: dict[str, tuple[str, list[str]]], key: str,
                    marks: list[int]) -> list[str]:
    """Markdown table: one row per env-step mark, one column per arm, the mean over its seeds (n/a if one lacks it)."""
    arms = list(dict.fromkeys(arm for arm, _ in runs.values()))
    lines = ["| env steps | " + " | ".join(f"{arm} (mean of {len(runs_of_arm(runs, arm))})" for arm in arms) + " |",
             "|---:|" + "---:|" * len(arms)]
    for mark in marks:
        cells = []
        for arm in arms:
            values = [at_steps(curves[run], mark).get(key, math.nan) for run in runs_of_arm(runs, arm)]
            cells.append(fmt(sum(values) / len(values)))
        lines.append(f"| {mark:,} | " + " | ".join(cells) + " |")
    return lines


def markdown(curves: dict[str, list[dict]], commands: dict[str, list[str]], args: argparse.Namespace,
             runs: dict[str, tuple[str, list[str]]]) -> str:
    longest = max(rows[-1]["env_steps"] for rows in curves.values())
    marks = list(range(1_000_000, longest + 1, 1_000_000)) + ([longest] if longest % 1_000_000 else [])
    with_levels = {arm: rows for arm, rows in curves.items() if any(not math.isnan(r["level_mean"]) for r in rows)}
    lines = [
        "# Curriculum vs no curriculum (embedded MuJoCo simulator)" + (f": {args.title}" if args.title else ""),
        "",
        f"Experiment `{args.config}`, one run per arm{' and seed' if args.seeds else ''}; budget {args.env_steps:,} "
        "env steps or "
        f"{args.time_s:g} s of training per arm, whichever came first. Generated by "
        "`benchmarks/curriculum_comparison.py`; per-iteration curves of every arm in the `.csv` next to this file.",
        "",
        "```bash",
        *(f"PYTHONPATH=$PWD python {shlex.join(cmd[1:])}" for cmd in commands.values()),
        "```",
        "",
        "**Full-task success** (`curriculum/full_task_success_rate`): rolling success rate (last 100 episodes) of",
        "the evaluation slice, the envs that always play the full task (the experiment's `task` section), in every",
        "arm (n/a: no episode yet, or the arm stopped earlier).",
        "",
        *table(curves, "full_task_success_rate", marks, 3),
        "",
        *([f"Mean over seeds {', '.join(map(str, args.seeds))}:", "",
           *mean_over_seeds(curves, runs, "full_task_success_rate", marks), ""] if args.seeds else []),
        "**Success over all envs** (`env_runners/mapush/success_rate`): the full task only in the no-curriculum",
        "arms; with a curriculum, episodes of every level.",
        "",
        *table(curves, "all_envs_success_rate", marks, 3),
        "",
        "**Mean curriculum level** of the training envs (`curriculum/level_mean`; top level = number of levels - 1).",
        "",
        *table(with_levels, "level_mean", marks, 2),
        "",
        f"| run | iterations | env steps | training time (s) | full task | level mean | env steps to full task "
        f"≥ {REACHED} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, rows in curves.items():
        last = rows[-1]
        reached = next((f"{row['env_steps']:,}" for row in rows if row["full_task_success_rate"] >= REACHED),
                       "not reached")
        lines.append(f"| {arm} | {last['iteration']} | {last['env_steps']:,} | {last['time_s']:.0f} "
                     f"| {fmt(last['full_task_success_rate'])} | {fmt(last['level_mean'], 2)} | {reached} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/single.yaml")
    parser.add_argument("--env-steps", type=int, default=10_000_000)
    parser.add_argument("--time-s", type=float, default=1140.0, help="training-time cap per arm")
    parser.add_argument("--storage", default="runs/curriculum_comparison")
    parser.add_argument("--out", default="benchmarks/curriculum_comparison")
    parser.add_argument("--arm", action="append", default=[], metavar="NAME:KEY=VALUE;...",
                        help="another curriculum arm, e.g. 'fast:curriculum.num_levels=4' (repeatable)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to every arm, e.g. 'rewards.scales.distance_to_target=0.0' (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[], help="run each arm once per seed (run.seed)")
    parser.add_argument("--prefix", default="", help="prefix of every run name, e.g. 'sparse_'")
    parser.add_argument("--title", default="", help="what the setting is, for the report's heading")
    parser.add_argument("--report-only", action="store_true", help="only read existing runs and write the report")
    args = parser.parse_args()

    arms = {**DEFAULT_ARMS, **dict(parse_arm(text) for text in args.arm)}
    runs = runs_of(arms, args)
    commands = {name: command(args.config, name, settings, args) for name, (_, settings) in runs.items()}
    if not args.report_only:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for cmd in commands.values():
            print("running:", shlex.join(cmd[1:]), flush=True)
            subprocess.run(cmd, cwd=REPO, env=env, check=True)
    curves = {name: rows_of(newest_trial(REPO / args.storage, name), name) for name in runs}
    out = REPO / args.out
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for rows in curves.values():
            writer.writerows(rows)
    out.with_suffix(".md").write_text(markdown(curves, commands, args, runs))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
