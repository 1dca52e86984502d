"""The console table of a run: one row per member, in member order, under 120 columns.

Tune's CLIReporter printed 277 columns (its trial names, locations and five arbitrary mutated values), reordered
rows at every print, and did not say what its columns mean. This table shows what a user acts on: the member's
latest held-out evaluation (success first), its curriculum level out of the top level, its score, and how far
PBT has moved its mutated values from where the member started (`drift`: the geometric mean of value/start
factors, x1.00 when nothing moved).

Between tables the console says what changed: each exploit (`population.scheduler`, one `[pbt]` line) and each
checkpoint (`CheckpointLines`, one `[checkpoint]` line naming the folder to evaluate or resume from; Tune's own
line, 100 characters of actor prefix and path object, is filtered in `ray_compat.RAY_NOTICES`).
"""

from __future__ import annotations

import math
import textwrap
import time

from ray.tune import Callback, ProgressReporter

from population import result_keys as keys
from population.explore import get_path

WIDTH = 120
#: (result key, header, format) of each metric column.
COLUMNS = (
    ("training_iteration", "iter", "{:.0f}"),
    (keys.ENV_STEPS, "env steps", "{:,.0f}"),
    (keys.EVAL_SUCCESS_RATE, "success", "{:.2f}"),
    (keys.EVAL_CONTRIBUTION_BALANCE, "balance", "{:.2f}"),
    (keys.EVAL_FREELOADING_INDEX, "freeload", "{:.2f}"),
    (keys.LEVEL_MEAN, "level", "{:.2f}"),
    (keys.SCORE, "score", "{:.3f}"),
)


def drift(config: dict, start: dict[str, float], locations: dict[str, str]) -> float:
    """Geometric mean over the mutated values of max(value/start, start/value): 1.0 when none moved."""
    logs = [abs(math.log(get_path(config, locations[path]) / value)) for path, value in start.items()]
    return math.exp(sum(logs) / len(logs)) if logs else 1.0


class PopulationTable(ProgressReporter):
    """Tune progress reporter printing `COLUMNS` per member every `every_s` seconds and at the end."""

    def __init__(self, top_level: int, plan=None, every_s: float = 30.0) -> None:  # noqa: ANN001 -- PopulationPlan
        self.top_level = top_level
        self.start = plan.initial if plan is not None else None
        self.locations = plan.trial_config_locations() if plan is not None else {}
        self.every_s = every_s
        self.last_print = -math.inf
        self.legend_shown = False

    def should_report(self, trials: list, done: bool = False) -> bool:
        return done or time.monotonic() - self.last_print >= self.every_s

    def rows(self, trials: list) -> list[list[str]]:
        header = ["member", "status", *(h if h != "level" else f"level/{self.top_level}" for _, h, _ in COLUMNS)]
        if self.start is not None:
            header.append("drift")
        table = [header]
        for trial in sorted(trials, key=lambda t: t.config.get("member", 0)):
            result = trial.last_result or {}
            member = trial.config.get("member", 0)
            row = [str(member), trial.status]
            for key, _, fmt in COLUMNS:
                value = keys.result_value(result, key)
                row.append(fmt.format(value) if isinstance(value, (int, float)) and math.isfinite(value) else "-")
            if self.start is not None:
                row.append(f"x{drift(trial.config, self.start[member], self.locations):.2f}")
            table.append(row)
        return table

    def render(self, trials: list, legend: bool = True) -> str:
        table = self.rows(trials)
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
        explained = (f"success, balance, freeload: latest held-out evaluation (full task, each episode to its end); "
                     f"level: mean curriculum level (top {self.top_level})"
                     + ("; drift: mutated values vs the member's start" if self.start is not None else ""))
        return "\n".join([*(line[:WIDTH] for line in lines), *(textwrap.wrap(explained, WIDTH) if legend else [])])

    def report(self, trials: list, done: bool, *sys_info: str) -> None:
        self.last_print = time.monotonic()
        print(self.render(trials, legend=not self.legend_shown), flush=True)  # the legend once per run
        self.legend_shown = True


class CheckpointLines(Callback):
    """One short line per checkpoint, printed by the driver: `[checkpoint] member 2, iteration 100: <folder>`."""

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:  # noqa: ANN001 -- Tune's hook
        folder = "/".join(checkpoint.path.rstrip("/").split("/")[-2:])
        done = trial.last_result.get("training_iteration")
        member = trial.config.get("member")
        member = 0 if member is None else member  # a single run: its one member, as the table numbers it
        print(f"[checkpoint] member {member}, iteration {done}: {folder}", flush=True)
