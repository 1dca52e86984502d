"""Pictures of a population run: who copied whom, what was mutated, and how each member did.

    python -m population.report runs/pbt/            # writes runs/pbt/report/{lineage.png,summary.json,best.gif}
    python -m population.report runs/pbt/ --baseline runs/single/   # and a one-member run on the same axes

`--baseline` adds a run of one member (no PBT, same per-member budget) to the success and freeloading plots and
to the table of best member, worst member and baseline at common env-step marks (printed, and in summary.json).

Reads only what Tune wrote to disk: every trial's `result.json` (one row per iteration, with the config the
member was running) and the scheduler's `pbt_global.txt` (one row per exploit:
[receiver tag, donor tag, receiver iteration, donor iteration, old config, new config]).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mapush_rllib.checkpoint_policy import find_checkpoint  # noqa: E402
from mapush_rllib.checkpoints import CheckpointError  # noqa: E402
from population import result_keys as keys  # noqa: E402
from population.pbt_config import display_name  # noqa: E402
from population.result_keys import ran_evaluation, result_value  # noqa: E402 -- methods take a `keys` argument
from population.resume import POPULATION_FILE, member_index  # noqa: E402

#: Result keys, in order of preference, for each curve of the report.
#: The member's evaluation first; runs from before it had one fall back to the rolling (censored) metrics.
SUCCESS_KEYS = (keys.EVAL_SUCCESS_RATE, keys.FULL_TASK_SUCCESS, keys.SUCCESS_RATE)
LEVEL_KEYS = (keys.LEVEL_MEAN,)
FREELOADING_KEYS = (keys.EVAL_FREELOADING_INDEX, keys.FREELOADING_INDEX)
SCORE_KEYS = (keys.SCORE,)
MAX_LABELLED_EXPLOITS = 12  # exploits whose new values are written next to their arrow
STEPS_KEYS = ("num_env_steps_sampled_lifetime", keys.ENV_STEPS)  # Tune's top-level copy first


@dataclass
class Member:
    """One trial of the population: its results and the values it ran with."""

    trial_id: str
    tag: str  # Tune's experiment tag, "<index>_<params>", as written in pbt_global.txt
    directory: Path
    rows: list[dict] = field(default_factory=list)

    @property
    def index(self) -> int:
        return int(self.tag.split("_", 1)[0])

    def series(self, keys: tuple[str, ...]) -> tuple[list[int], list[float]]:
        """(iterations, values) of the first of `keys` the results have."""
        for key in keys:
            points = [(row["training_iteration"], value) for row in self.rows
                      if (value := result_value(row, key)) is not None]
            if points:
                return [p[0] for p in points], [float(p[1]) for p in points]
        return [], []

    def env_steps_series(self, keys: tuple[str, ...]) -> tuple[list[float], list[float]]:
        """(env steps, values) of the first of `keys` each result has; of an evaluation key, only the results of
        the iterations that ran an evaluation (every result carries the latest one)."""
        points = []
        for row in self.rows:
            key = next((key for key in keys if result_value(row, key) is not None), None)
            at = lookup_first(row, STEPS_KEYS)
            if key is None or at is None or (is_evaluation(key) and not ran_evaluation(row)):
                continue
            points.append((at, float(result_value(row, key))))
        return [p[0] for p in points], [p[1] for p in points]

    def at_env_steps(self, keys: tuple[str, ...], steps: float) -> float | None:
        """The value of the last point of `env_steps_series` at or before `steps` env steps (None before the first
        or past the last)."""
        at, values = self.env_steps_series(keys)
        before = [value for x, value in zip(at, values, strict=True) if x <= steps]
        return before[-1] if before and steps <= max(at) else None

    def last(self, keys: tuple[str, ...]) -> float | None:
        _, values = self.series(keys)
        return values[-1] if values else None


@dataclass
class Exploit:
    receiver: str
    donor: str
    receiver_iteration: int
    donor_iteration: int
    changes: dict[str, tuple[float, float]]  # mutated path -> (donor value, new value)


def is_evaluation(key: str) -> bool:
    return key.startswith(keys.EVAL + "/")


def lookup_first(row: dict, keys: tuple[str, ...]):
    return next((value for key in keys if (value := result_value(row, key)) is not None), None)


def flatten(config: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, path))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[path] = float(value)
    return out


def load_members(run_dir: Path) -> list[Member]:
    members = []
    for result_file in sorted(run_dir.glob("*/result.json")):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        member = member_index(result_file.parent)  # population.run's trial folders
        match = re.match(r".+?_(\d{5})_(\d+_.*?)_\d{4}-\d{2}-\d{2}_", result_file.parent.name)  # Tune's own
        if member is not None:
            tag = f"{member}_member={member}"  # Tune's experiment tag of grid member k
        else:
            tag = match.group(2) if match else rows[0].get("experiment_tag", "0")
        members.append(Member(rows[0]["trial_id"], tag, result_file.parent, rows))
    return sorted(members, key=lambda m: m.index)


def load_exploits(run_dir: Path) -> list[Exploit]:
    path = run_dir / "pbt_global.txt"
    if not path.exists():
        return []
    exploits = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        receiver, donor, receiver_iter, donor_iter, old, new = json.loads(line)
        before, after = flatten(old), flatten(new)
        changes = {k: (before[k], after[k]) for k in after if k in before and before[k] != after[k]}
        # After a resume, an exploited trial's tag ends in Tune's "@perturbed[...]": the member is what precedes it.
        receiver, donor = receiver.split("@", 1)[0], donor.split("@", 1)[0]
        exploits.append(Exploit(receiver, donor, int(receiver_iter), int(donor_iter), changes))
    return exploits


def mutated_paths(run_dir: Path, members: list[Member], exploits: list[Exploit]) -> dict[str, str]:
    """Trial-config path -> shown name (as in the console's exploit lines) of each mutated value: from
    `population.json`, else the paths that differ between members (shown as they are)."""
    described = run_dir / POPULATION_FILE
    if described.exists():
        from mapush_rllib.training import config_dict_path

        return {config_dict_path(path): display_name(path) for path in json.loads(described.read_text())["mutations"]}
    identity = {"member", "seed", "env_config.seed"}
    paths = {path for e in exploits for path in e.changes} - identity
    if not paths:
        configs = [flatten(m.rows[-1].get("config", {})) for m in members]
        keys = set.intersection(*(set(c) for c in configs)) if configs else set()
        paths = {k for k in keys if len({c[k] for c in configs}) > 1} - identity
    return {path: path for path in sorted(paths)}


def plot(run_dir: Path, members: list[Member], exploits: list[Exploit], out: Path,
         baseline: Member | None = None) -> Path:
    names = mutated_paths(run_dir, members, exploits)
    paths = list(names)
    colours = {m.tag: plt.cm.tab10(i % 10) for i, m in enumerate(members)}
    by_tag = {m.tag: m for m in members}
    columns = 4
    value_rows = -(-len(paths) // columns)
    fig = plt.figure(figsize=(14, 3.0 * (3 + value_rows)))
    grid = fig.add_gridspec(3 + value_rows, columns)

    lineage = fig.add_subplot(grid[0, :])
    for m in members:
        iterations, _ = m.series(("training_iteration",))
        lineage.plot(iterations, [m.index] * len(iterations), ".", color=colours[m.tag], ms=3)
    for e in exploits:
        if e.receiver in by_tag and e.donor in by_tag:
            start = (e.donor_iteration, by_tag[e.donor].index)
            end = (e.donor_iteration, by_tag[e.receiver].index)  # the receiver resumes from the donor's checkpoint
            lineage.plot(e.receiver_iteration, by_tag[e.receiver].index, "x", color="k", ms=5)
            lineage.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": colours[e.donor]})
            if len(exploits) <= MAX_LABELLED_EXPLOITS:  # beyond that the labels overlap: the panels below show them
                changed = [(p, v) for p, v in e.changes.items() if p in paths]
                label = ", ".join(f"{names[p]} {a:.3g}→{b:.3g}" for p, (a, b) in changed[:3])
                lineage.text(end[0], end[1] + 0.15, label, fontsize=6, color=colours[e.receiver], clip_on=True)
    lineage.set_yticks([m.index for m in members], [f"member {m.index}" for m in members])
    labelled = "; new values" if len(exploits) <= MAX_LABELLED_EXPLOITS else ""
    lineage.set_title(f"lineage: {len(exploits)} exploits (x: member replaced; arrow: donor → receiver{labelled})",
                      pad=18)

    curves = ((SUCCESS_KEYS, "full-task success (member's evaluation)"), (SCORE_KEYS, "score"),
              (FREELOADING_KEYS, "freeloading index"), (LEVEL_KEYS, "curriculum level (mean)"))
    for k, (curve_keys, title) in enumerate(curves):
        ax = fig.add_subplot(grid[1 + k // 2, (k % 2) * 2:(k % 2) * 2 + 2])
        for m in members:
            ax.plot(*m.env_steps_series(curve_keys), ".-" if is_evaluation(curve_keys[0]) else "-",
                    color=colours[m.tag], label=f"member {m.index}")
        if baseline is not None and curve_keys in (SUCCESS_KEYS, FREELOADING_KEYS):
            ax.plot(*baseline.env_steps_series(curve_keys), "k--", label="baseline (one member, no PBT)")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("env steps per member", fontsize=8)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7, ncol=3, loc="upper left")

    for k, path in enumerate(paths):
        ax = fig.add_subplot(grid[3 + k // columns, k % columns])
        for m in members:
            points = [(row["training_iteration"], flat[path]) for row in m.rows
                      if path in (flat := flatten(row.get("config", {})))]
            if points:
                ax.step(*zip(*points, strict=True), where="post", color=colours[m.tag])
        ax.set_title(names[path], fontsize=8)
        ax.set_xlabel("training iteration", fontsize=7)
        ax.set_ylabel("value", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    lineage.set_xlabel("training iteration", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def final_score(m: Member) -> float:
    """The member's last score (its success where no score was logged): what ranks best and worst."""
    value = m.last(SCORE_KEYS)
    value = value if value is not None else (m.last(SUCCESS_KEYS) or 0.0)
    return value if value == value else -math.inf  # NaN (nothing measured yet) ranks last


def best_member(members: list[Member]) -> Member:
    return max(members, key=final_score)


def worst_member(members: list[Member]) -> Member:
    return min(members, key=final_score)


def curves_table(members: list[Member], baseline: Member | None, marks: int = 8) -> dict:
    """Full-task success and freeloading index of the best and worst member (by final score) and of the
    baseline, at `marks` evenly spaced env-step marks up to the end of the shortest of them (marks all reached)."""
    runs = {"best": best_member(members), "worst": worst_member(members)}
    if baseline is not None:
        runs["baseline"] = baseline
    common = min(max(m.env_steps_series(SUCCESS_KEYS)[0], default=0) for m in runs.values())
    steps = [round(common * (i + 1) / marks) for i in range(marks)]
    table = {"env_steps": steps, "members": {name: None if name == "baseline" else m.index
                                             for name, m in runs.items()}}
    for name, m in runs.items():
        table[name] = {"success": [m.at_env_steps(SUCCESS_KEYS, at) for at in steps],
                       "freeloading_index": [m.at_env_steps(FREELOADING_KEYS, at) for at in steps]}
    return table


def markdown(table: dict) -> str:
    runs = [name for name in ("best", "worst", "baseline") if name in table]
    names = [f"{name} (member {table['members'][name]})" if table["members"][name] is not None else name
             for name in runs]
    lines = ["| env steps | " + " | ".join(f"{n}: success | {n}: freeloading" for n in names) + " |",
             "|---:|" + "---:|---:|" * len(runs)]
    for i, at in enumerate(table["env_steps"]):
        cells = [f"{v:.3f}" if (v := table[name][key][i]) is not None else "n/a"
                 for name in runs for key in ("success", "freeloading_index")]
        lines.append(f"| {at:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(members: list[Member], exploits: list[Exploit]) -> dict:
    return {
        "members": [
            {
                "member": m.index,
                "trial_id": m.trial_id,
                "iterations": m.rows[-1]["training_iteration"],
                "score": m.last(SCORE_KEYS),
                "success": m.last(SUCCESS_KEYS),
                "curriculum_level": m.last(LEVEL_KEYS),
                "freeloading_index": m.last(FREELOADING_KEYS),
            }
            for m in members
        ],
        "exploits": [e.__dict__ for e in exploits],
        "best_member": best_member(members).index if members else None,
        "worst_member": worst_member(members).index if members else None,
    }


def newest_checkpoint(directory: Path) -> Path | None:
    """The member's complete checkpoint of the highest iteration (`find_checkpoint`), None without one."""
    try:
        return find_checkpoint(directory)
    except CheckpointError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the experiment directory (contains the trial directories)")
    parser.add_argument("--out", type=Path, help="output directory (default RUN_DIR/report)")
    parser.add_argument("--no-gif", action="store_true", help="skip the best member's rollout GIF")
    parser.add_argument("--gif-envs", type=int, default=4)
    parser.add_argument("--baseline", type=Path, metavar="RUN_DIR",
                        help="a run of one member (no PBT) to draw and tabulate next to the population")
    args = parser.parse_args(argv)
    members = load_members(args.run_dir)
    if not members:
        print(f"error: {args.run_dir} holds no trial results (expected */result.json)", file=sys.stderr)
        return 2
    baseline = None
    if args.baseline is not None:
        baselines = load_members(args.baseline)
        if len(baselines) != 1:
            print(f"error: --baseline {args.baseline}: expected the run directory of one member (one "
                  f"*/result.json), found {len(baselines)}", file=sys.stderr)
            return 2
        baseline = baselines[0]
    exploits = load_exploits(args.run_dir)
    out = args.out or args.run_dir / "report"
    png = plot(args.run_dir, members, exploits, out / "lineage.png", baseline)
    report = summary(members, exploits)
    report["lineage_png"] = str(png)
    report["curves"] = curves_table(members, baseline)
    print(markdown(report["curves"]))
    best = best_member(members)
    checkpoint = newest_checkpoint(best.directory)
    if not args.no_gif and checkpoint is not None:
        from mapush_rllib.evaluate import main as evaluate

        gif = out / "best.gif"
        evaluate(["--policy", str(checkpoint), "--num-envs", str(args.gif_envs), "--render", str(gif), "--json"])
        report["best_gif"] = str(gif)
    (out / "summary.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"lineage: {png}\nsummary: {out / 'summary.json'}" + (f"\nbest member rollout: {report['best_gif']}"
                                                                   if "best_gif" in report else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
