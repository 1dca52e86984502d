"""A tiny population on a real local Ray with real Tune PBT (`configs/pbt_smoke.yaml`), as a user runs it."""

from __future__ import annotations

import csv
import json
import math
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mapush_rllib.algorithm import env_state_digest
from mapush_rllib.checkpoints import CheckpointError, verify
from mapush_rllib.training import config_dict_path
from population.explore import get_path
from population.pbt_config import display_name

from .conftest import ENV, REPO, finish, result_rows, start_run, summary_of, trial_dirs, write_config

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def population_run(tmp_path_factory) -> tuple[Path, str]:
    storage = tmp_path_factory.mktemp("runs")
    log: list[str] = []
    # Every checkpoint kept (not the default newest 5): the tests trace each restore to a checkpoint on disk.
    # Synchronous decisions (opt-in) are what `test_members_decide_together...` checks; the rest holds for both.
    config = write_config("pbt_smoke.yaml", tmp_path_factory.mktemp("config"), run={"checkpoints_to_keep": None},
                          pbt={"synchronous": True})
    process = start_run(str(config), "--storage", str(storage))
    assert finish(process, log) == 0, "".join(log)[-4000:]
    summary = summary_of(log)
    return Path(summary["experiment_dir"]), "".join(log)


def exploits(experiment_dir: Path) -> list[list]:
    rows = (experiment_dir / "pbt_global.txt").read_text().splitlines()
    return [json.loads(row) for row in rows if row.strip()]


def member_dirs(experiment_dir: Path) -> dict[int, Path]:
    """member index -> trial directory (Tune's folder names carry the member's grid value)."""
    return {int(re.match(r"member_(\d+)_", p.name).group(1)): p for p in trial_dirs(experiment_dir)}


def test_every_member_trains_and_at_least_one_exploit_happens(population_run) -> None:
    experiment_dir, _ = population_run
    members = member_dirs(experiment_dir)
    assert sorted(members) == [0, 1, 2]
    for directory in members.values():
        iterations = [row["training_iteration"] for row in result_rows(directory)]
        assert iterations[-1] == 12
        # result.json keeps every result across the restarts exploits cause, as progress.csv does (Tune's own
        # JSON logger re-reads it from the run folder at each restart and can drop rows).
        with open(directory / "progress.csv", newline="") as f:
            assert iterations == [int(row["training_iteration"]) for row in csv.DictReader(f)]
        assert iterations[0] == 1
    assert len(exploits(experiment_dir)) >= 1
    described = json.loads((experiment_dir / "population.json").read_text())
    assert described["population_size"] == 3 and "training.lr" in described["mutations"]


def test_members_decide_together_on_the_same_iterations_scores(population_run) -> None:
    """`pbt.synchronous: true`: every member pauses at the decision iteration until all have their score
    for it, so an exploited member and its donor were ranked at the same decision. Tune logs both members'
    last iterations; the member whose result completed the decision is logged one early (Tune records its result
    after the decision), so both round up to the same decision iteration. Asynchronously the donor runs on and
    is logged at a later decision."""
    experiment_dir, _ = population_run
    pbt = yaml.safe_load((experiment_dir / "experiment.yaml").read_text())["pbt"]
    assert pbt["synchronous"] is True
    interval = pbt["perturbation_interval"]
    rows = exploits(experiment_dir)
    assert rows
    for _, _, member_iteration, donor_iteration, *_ in rows:
        assert math.ceil(member_iteration / interval) == math.ceil(donor_iteration / interval), rows


def assert_live_values_equal_config(row: dict) -> None:
    """The entropy coefficients and learning rates inside the learner, and the reward scales inside every env,
    equal the config this iteration ran with."""
    config, live = row["config"], row["live_settings"]
    for policy in ("policy_0", "policy_1"):
        wanted = get_path(config, f"algorithm_config_overrides_per_module.{policy}.entropy_coeff")
        assert live[policy]["entropy_coeff"] == pytest.approx(wanted, rel=1e-9), policy
        assert live[policy]["lr"] == pytest.approx(config["lr"], rel=1e-9), policy
    for agent, terms in config["env_config"]["rewards"]["per_agent_scales"].items():
        for term, value in terms.items():
            assert live["reward_scales"][agent][term] == pytest.approx(value, rel=1e-6), (agent, term)
    assert live["reward_scales_agree"] == 1.0, "every env of every runner holds the same scales"


def test_exploited_members_run_their_new_values_read_from_learners_and_envs(population_run) -> None:
    """Tune's log can list exploit decisions that a later one superseded (rllib.md §4), so the evidence is what
    each member reports: after an exploit it runs new values, and learner and envs hold exactly those."""
    experiment_dir, _ = population_run
    described = json.loads((experiment_dir / "population.json").read_text())
    paths = [config_dict_path(path) for path in described["mutations"]]
    changed = 0
    for member, directory in member_dirs(experiment_dir).items():
        rows = result_rows(directory)
        for row in rows:
            assert row["config"]["member"] == member, "a member keeps its identity through exploits"
            assert_live_values_equal_config(row)
        first = [get_path(rows[0]["config"], path) for path in paths]
        changed += any([get_path(row["config"], path) for path in paths] != first for row in rows)
    assert changed >= 1, "at least one member ran new values after an exploit"


def checkpoint_digests(directory: Path) -> set[str]:
    """The curriculum-state digests of a member's complete checkpoints (after a SIGKILL a folder may be cut short,
    mid-write or mid-deletion by the retention; nothing restores from such a folder)."""
    digests = set()
    for checkpoint in directory.glob("checkpoint_*"):
        try:
            verify(checkpoint)
        except CheckpointError:
            continue
        with open(checkpoint / "algorithm_state.pkl", "rb") as f:
            digests.add(env_state_digest(pickle.load(f)["mapush_env_state"]))
    return digests


def test_exploited_member_continues_from_the_donors_curriculum_state(population_run) -> None:
    """Policies and task difficulty travel together: after an exploit a member's curriculum state (levels,
    windows, RNG counters) is exactly the one in a checkpoint of the member it copied."""
    experiment_dir, _ = population_run
    members = member_dirs(experiment_dir)
    own = {member: checkpoint_digests(directory) for member, directory in members.items()}
    from_another = 0
    for member, directory in members.items():
        others = set().union(*(digests for m, digests in own.items() if m != member))
        for row in result_rows(directory):
            digest = row["restored_env_state_digest"]
            if digest:
                assert digest in own[member] | others, "a restore loads the state of a checkpoint on disk"
                from_another += digest in others and digest not in own[member]
        levels = [row["curriculum"]["level_mean"] for row in result_rows(directory)]
        assert all(level == level for level in levels[1:]), "curriculum metrics in every result"
    assert from_another >= 1, "some member continued from another member's curriculum state"


def test_mutated_values_stay_inside_their_bounds(population_run) -> None:
    experiment_dir, _ = population_run
    bounds = json.loads((experiment_dir / "population.json").read_text())["mutations"]
    for directory in trial_dirs(experiment_dir):
        config = result_rows(directory)[-1]["config"]
        overrides = config["algorithm_config_overrides_per_module"]
        values = {"training.lr": config["lr"]}
        for policy in ("policy_0", "policy_1"):
            values[f"training.per_module.{policy}.entropy_coeff"] = overrides[policy]["entropy_coeff"]
        for agent, terms in config["env_config"]["rewards"]["per_agent_scales"].items():
            for term, value in terms.items():
                values[f"rewards.per_agent_scales.{agent}.{term}"] = value
        assert values.keys() >= bounds.keys()
        for path, value in values.items():
            if path not in bounds:  # a term switched off (own_push by default) is not mutated and stays 0
                assert value == 0, (path, value)
                continue
            low, high = bounds[path]
            assert low <= value <= high, (path, value)


def test_members_are_ranked_by_score_not_return(population_run) -> None:
    experiment_dir, log = population_run
    for directory in trial_dirs(experiment_dir):
        row = result_rows(directory)[-1]
        parts = row["pbt"]
        assert set(parts) >= {"score", "full_task_success", "curriculum_progress", "task_progress", "freeloading_index",
                              "contribution_balance"}
        assert parts["full_task_success"] == row["eval"]["success_rate"], "ranked on the member's own evaluation"
        assert parts["task_progress"] == row["eval"]["task_progress"]
        achieved = parts["full_task_success"] + 0.5 * parts["curriculum_progress"] + 0.1 * parts["task_progress"]
        discount = (1 - 0.25 * parts["freeloading_index"]) * (1 - 0.25 * (1 - parts["contribution_balance"]))
        assert parts["score"] == pytest.approx(achieved * discount)
    assert "score" in log and "entropy_coeff" in log, "the member table shows scores and mutated values"


def test_report_draws_the_lineage_and_the_best_members_rollout(population_run, tmp_path) -> None:
    experiment_dir, _ = population_run
    # A one-member run to compare with: here member 1's results, as a run folder of their own.
    baseline_trial = tmp_path / "baseline" / "MAPushPPO_MAPushMultiAgentEnv_00000_0_2026-01-01_00-00-00"
    baseline_trial.mkdir(parents=True)
    baseline_rows = result_rows(member_dirs(experiment_dir)[1])
    (baseline_trial / "result.json").write_text("".join(json.dumps(row) + "\n" for row in baseline_rows))
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "population.report", str(experiment_dir), "--out", str(out),
                           "--gif-envs", "2", "--baseline", str(tmp_path / "baseline")],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    curves = summary["curves"]
    assert curves["members"]["best"] == summary["best_member"] and curves["members"]["worst"] is not None
    steps = [row["env_runners"]["num_env_steps_sampled_lifetime"] for row in baseline_rows]
    for i, mark in enumerate(curves["env_steps"]):  # the baseline's last evaluation at or before each mark
        row = next((r for r, at in zip(reversed(baseline_rows), reversed(steps), strict=True)
                    if at <= mark and r["eval"]["iteration"] == r["training_iteration"]), None)
        if row is None or mark > steps[-1]:
            assert curves["baseline"]["success"][i] is None
            continue
        for key, value in (("success", row["eval"]["success_rate"]),
                           ("freeloading_index", row["eval"]["freeloading_index"])):
            assert curves["baseline"][key][i] == pytest.approx(value, nan_ok=True), (key, mark)
    assert "| env steps | best (member" in done.stdout, "the table is printed"
    assert len(summary["exploits"]) == len(exploits(experiment_dir))
    assert {m["member"] for m in summary["members"]} == {0, 1, 2}
    assert (out / "lineage.png").stat().st_size > 20_000
    assert (out / "best.gif").stat().st_size > 10_000


def test_each_exploit_prints_one_line_with_the_values_old_and_new(population_run) -> None:
    """Tune's own line said "No hyperparameters mutated" while values changed; ours says who copied whom, at
    which scores, and each mutated value before -> after, and the member then runs the after values."""
    experiment_dir, log = population_run
    assert "No hyperparameters mutated" not in log
    lines = re.findall(r"\[pbt\] iteration \d+: member (\d) \(score [-\d.e]+\) copies member (\d) \(score [-\d.e]+\)"
                       r"; its values, before -> after:\n((?:      .*\n)+)", log)
    assert lines, log[-3000:]
    described = json.loads((experiment_dir / "population.json").read_text())
    by_name = {display_name(path): path for path in described["mutations"]}
    members = member_dirs(experiment_dir)
    announced_and_run = 0
    for member, donor, block in lines:
        assert member != donor
        for line in block.splitlines():
            assert len(line) <= 120, "the values fit the table's 120 columns"
            assert all(re.fullmatch(r"\S+ \S+ -> \S+", change) for change in line.strip().rstrip(";").split("; ")), \
                "a line breaks only between changes"
        changes = " ".join(line.strip() for line in block.splitlines())
        parsed = [(by_name[name], old, new) for name, old, new in
                  (re.fullmatch(r"(\S+) (\S+) -> (\S+)", change).groups() for change in changes.split("; "))]
        assert sorted(p for p, _, _ in parsed) == sorted(described["mutations"]), "every mutated value is shown"
        runs = [{path: float(f"{get_path(row['config'], config_dict_path(path)):.4g}") for path, _, _ in parsed}
                for row in result_rows(members[int(member)])]
        before = {path: float(old) for path, old, _ in parsed}
        after = {path: float(new) for path, _, new in parsed}
        assert before in runs, "'old' is what the member ran before the exploit"
        announced_and_run += after in runs
    # (a decision can be superseded by a later one before the member restarts: Tune's log lists both)
    assert announced_and_run >= 1, "the member then ran the values the line announced"


def test_the_table_has_one_row_per_member_in_member_order_within_120_columns(population_run) -> None:
    _, log = population_run
    lines = log.splitlines()
    headers = [i for i, line in enumerate(lines) if re.match(r"\s*member\s+status\s+iter\s+env steps\s+success", line)]
    assert headers, log[-3000:]
    for i in headers:
        header = lines[i]
        assert "drift" in header and re.search(r"level/\d+", header)
        rows = lines[i + 1:i + 4]
        assert [row.split()[0] for row in rows] == ["0", "1", "2"], rows
        legend = lines[i + 4:i + 6] if i == headers[0] else []  # the legend follows the first table only
        assert all(len(line) <= 120 for line in (header, *rows, *legend))
    assert lines[headers[0] + 4].startswith("success, balance, freeload:")


def test_exploits_and_pauses_start_no_new_process(population_run) -> None:
    """Tune's reuse_actors with `MAPushPPO.reset_config` (and `SearchKeepingPausedProcesses`, without which
    Tune drops the process when every member runs): a member that copies a donor continues in its own process,
    which takes the donor's checkpoint and the member's new values without a simulator rebuild; before, every
    exploit started a new process."""
    experiment_dir, _ = population_run
    described = json.loads((experiment_dir / "population.json").read_text())
    paths = [config_dict_path(path) for path in described["mutations"]]
    processes, changed = set(), 0
    for directory in member_dirs(experiment_dir).values():
        rows = result_rows(directory)
        processes |= {row["pid"] for row in rows}
        values = [[get_path(row["config"], path) for path in paths] for row in rows]
        changed += any(later != values[0] for later in values)
        for row in rows:
            assert row["config"]["env_config"]["seed"] == row["config"]["seed"], "the member's own seed"
    assert changed >= 1, "an exploit happened"
    # Without reuse every exploit starts a process; with it, exploits continue in running ones (on this machine
    # all of them; Tune still drops one now and then, so the test asks for at least one in place).
    assert len(processes) < described["population_size"] + len(exploits(experiment_dir)), processes
