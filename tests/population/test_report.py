"""The report's reading of Tune's PBT history, as Tune writes it before and after a resume."""

from __future__ import annotations

import json

from population.report import LEVEL_KEYS, SUCCESS_KEYS, Member, load_exploits, load_members


def test_exploits_after_a_resume_name_the_members_without_tunes_perturbed_suffix(tmp_path) -> None:
    config = {"member": 0, "lr": 1e-3}
    lines = [  # [receiver tag, donor tag, receiver iteration, donor iteration, donor config, new config]
        ["0_member=0", "2_member=2", 59, 50, config, {**config, "lr": 2e-3}],
        ["3_member=3@perturbed[lr=0.002]", "0_member=0@perturbed[lr=0.002]", 210, 220, config, config],
    ]
    (tmp_path / "pbt_global.txt").write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, resumed = load_exploits(tmp_path)
    assert (first.receiver, first.donor, first.changes) == ("0_member=0", "2_member=2", {"lr": (1e-3, 2e-3)})
    assert (resumed.receiver, resumed.donor) == ("3_member=3", "0_member=0")


def test_evaluation_curves_have_one_point_per_evaluation_and_others_one_per_result(tmp_path) -> None:
    """Every result carries the latest evaluation (NaN before the first); the report draws each evaluation once,
    at the env steps of the iteration that ran it, and rolling curves at every result."""
    nan = float("nan")
    evaluations = {2: 0.25, 4: 0.5}  # iteration -> success of the evaluation it ran
    rows = []
    latest = {"iteration": nan, "success_rate": nan}
    for iteration in range(1, 6):
        if iteration in evaluations:
            latest = {"iteration": iteration, "success_rate": evaluations[iteration]}
        rows.append({"training_iteration": iteration, "num_env_steps_sampled_lifetime": 100 * iteration,
                     "eval": dict(latest), "curriculum": {"level_mean": 0.1 * iteration}})
    member = Member("t0", "0_member=0", tmp_path, rows)
    assert member.env_steps_series(SUCCESS_KEYS) == ([200, 400], [0.25, 0.5])
    assert member.env_steps_series(LEVEL_KEYS)[0] == [100, 200, 300, 400, 500]
    assert member.at_env_steps(SUCCESS_KEYS, 350) == 0.25


def test_members_are_read_from_trial_folders_and_from_packed_copies_named_member_k(tmp_path) -> None:
    """`benchmarks/headline_seed.sh` packs trial `member_<k>_<id>` as `member_<k>`: the report names it member k."""
    for folder, trial_id in (("member_0_7dc0f_00000", "7dc0f_00000"), ("member_3", "7dc0f_00003"),
                             ("member_12", "7dc0f_00012")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "result.json").write_text(json.dumps({"trial_id": trial_id}) + "\n")
    (tmp_path / "member_3x").mkdir()  # not a member folder: falls back to the result's tag
    (tmp_path / "member_3x" / "result.json").write_text(json.dumps({"trial_id": "t", "experiment_tag": "5_x"}) + "\n")
    assert [(member.index, member.tag) for member in load_members(tmp_path)] == [
        (0, "0_member=0"), (3, "3_member=3"), (5, "5_x"), (12, "12_member=12")]
