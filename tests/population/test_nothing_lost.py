"""Nothing lost, nothing silently wrong: kills at any moment, damaged checkpoints, two processes on one run.

Runs are real (`python -m population.run` in its own session, a real local Ray), killed with SIGKILL as a crash or
an impatient user would, and resumed. The test computes on its own what a resume must do -- which checkpoint is
the newest complete one, which result rows must survive -- and compares.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mapush_rllib.checkpoint_policy import find_checkpoint
from mapush_rllib.checkpoints import MANIFEST, CheckpointError, trial_checkpoints, verify
from population.resume import LOCK_FILE, RunLock, changed_settings, find_run, new_run_dir, with_added_settings
from population.run import main

from ..processes import kill_group
from .conftest import ENV, REPO, result_rows, write_config

pytestmark = pytest.mark.ray


# ------------------------------------------------------------------------------------------------- helpers


def launch(config: Path, storage: Path, log: Path, *extra: str) -> subprocess.Popen:
    """`population.run` in a session of its own, its output in `log` (a file: a pipe nobody reads would block it)."""
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, "-m", "population.run", str(config), "--storage", str(storage),
                                 *extra], cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_when(process: subprocess.Popen, condition, log: Path, timeout_s: float = 600) -> None:
    """SIGKILL the run's whole session as soon as `condition()` holds (checked every 20 ms)."""
    deadline = time.monotonic() + timeout_s
    try:
        while not condition():
            assert process.poll() is None, f"the run ended before the kill:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"condition never held:\n{log.read_text()[-3000:]}"
            time.sleep(0.02)
    finally:
        kill_group(process)


def run_to_end(config: Path, storage: Path, log: Path, *extra: str) -> tuple[int, str]:
    process = launch(config, storage, log, *extra)
    try:
        status = process.wait(timeout=900)
    finally:
        kill_group(process)
    return status, log.read_text()


def members(storage: Path) -> list[Path]:
    runs = list(storage.glob("*_*-*-*_*"))
    return sorted(p for p in runs[0].iterdir() if p.is_dir() and p.name.startswith("member_")) if runs else []


def complete_count(trial: Path) -> int:
    count = 0
    for folder in trial_checkpoints(trial):
        try:
            verify(folder)
            count += 1
        except CheckpointError:
            pass
    return count


def result_lines(trial: Path) -> list[str]:
    """The member's result.json lines (none before its first result)."""
    path = trial / "result.json"
    return path.read_text().splitlines() if path.exists() else []


#: In the rows a resume must keep: the checkpoint's own row, which a kill kept from the logs and the resume writes
#: back from the checkpoint (PBT saves a donor's checkpoint before Tune's loggers see its result).
WRITTEN_BACK = None


def expected_resume(trial: Path) -> tuple[str | None, int, list[str | None]]:
    """(newest complete checkpoint, its iteration, the result.json lines a resume must keep), computed here."""
    newest = None
    for folder in trial_checkpoints(trial):
        try:
            newest = verify(folder)
            break
        except CheckpointError:
            continue
    lines = result_lines(trial)
    if newest is None:
        return None, 0, []
    iterations = []
    for line in lines:
        try:
            iterations.append(json.loads(line)["training_iteration"])
        except ValueError:
            iterations.append(None)  # a line cut by the kill
    rows = [i for i, value in enumerate(iterations) if value == newest.training_iteration]
    if rows:
        return newest.path.name, newest.training_iteration, lines[: rows[-1] + 1]
    whole = [line for line, value in zip(lines, iterations, strict=True) if value is not None]
    assert [value for value in iterations if value is not None][-1:] == [newest.training_iteration - 1], iterations
    return newest.path.name, newest.training_iteration, [*whole, WRITTEN_BACK]


def assert_resumed_as_expected(trial: Path, expected: tuple[str | None, int, list[str | None]], output: str) -> None:
    name, iteration, kept = expected
    where = f"{name} (iteration {iteration})" if name else "the start (no complete checkpoint)"
    assert f"{trial.name}: continues from {where}" in output, output[-4000:]
    lines = result_lines(trial)
    assert len(lines) >= len(kept)
    for line, wanted in zip(lines, kept, strict=False):
        if wanted is WRITTEN_BACK:
            assert json.loads(line)["training_iteration"] == iteration, "the checkpoint's row, written back"
        else:
            assert line == wanted, "every row up to the checkpoint is kept as it was"
    if len(lines) > len(kept):
        assert json.loads(lines[len(kept)])["training_iteration"] == iteration + 1, "no iteration repeated or lost"


# --------------------------------------------------------------------------------------------------- tests


def test_killed_after_its_first_checkpoints_a_run_resumes_from_the_newest(tmp_path: Path) -> None:
    """Item 1: killed before Tune saved its experiment state with the newest checkpoints, `--resume` restarted
    at iteration 1 and rewrote the checkpoint folders in place. It continues from the newest complete one."""
    config = write_config("smoke.yaml", tmp_path, run={"stop": {"training_iterations": 40}})
    storage, log = tmp_path / "runs", tmp_path / "run.log"
    process = launch(config, storage, log)
    kill_when(process, lambda: any(complete_count(m) >= 2 for m in members(storage)), log)
    (trial,) = members(storage)
    expected = expected_resume(trial)
    kept_checkpoint = (trial / expected[0] / MANIFEST).read_bytes()

    status, output = run_to_end(config, storage, tmp_path / "resume.log", "--resume")
    assert status == 0, output[-4000:]
    assert_resumed_as_expected(trial, expected, output)
    iterations = [row["training_iteration"] for row in result_rows(trial)]
    assert iterations == list(range(1, 41)), "each iteration once, none lost"
    progress = (trial / "progress.csv").read_text().splitlines()
    assert len(progress) == 1 + 40, "progress.csv: the header and one row per iteration"
    if (trial / expected[0]).exists():  # retention may have deleted it since; it was never rewritten
        assert (trial / expected[0] / MANIFEST).read_bytes() == kept_checkpoint
    kept = trial_checkpoints(trial)
    assert 1 <= len(kept) <= 10, "run.checkpoints_to_keep (5 by default): the newest 5 and the best 5"
    for folder in kept:
        verify(folder)


def test_cut_and_damaged_checkpoints_are_passed_over_by_resume_and_evaluate(tmp_path: Path) -> None:
    """Items 7, 8 and the disk: a checkpoint whose copy was cut short and one with a damaged file are passed over
    (named, kept aside, never rewritten); `evaluate` takes the highest complete iteration, not the newest file;
    Tune's experiment state cut in the run folder comes back from the killed driver's staging copy."""
    config = write_config("smoke.yaml", tmp_path, run={"stop": {"training_iterations": 16}})
    storage, log = tmp_path / "runs", tmp_path / "run.log"
    process = launch(config, storage, log)
    kill_when(process, lambda: any(complete_count(m) >= 3 for m in members(storage)), log)
    (trial,) = members(storage)
    newest, second, third = trial_checkpoints(trial)[:3]
    for folder in (newest, second, third):
        verify(folder)
    (newest / MANIFEST).unlink()  # as if the kill came while Tune copied it
    state = next(p for p in sorted(second.rglob("*")) if p.is_file() and p.name != MANIFEST and p.stat().st_size)
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(data)
    (trial / third.name / "algorithm_state.pkl").touch()  # an older checkpoint with the newest file time
    (state_file,) = trial.parent.glob("experiment_state-*.json")  # as if killed while Tune copied it
    state_file.write_text(state_file.read_text()[: state_file.stat().st_size // 2])

    assert find_checkpoint(trial) == third, "evaluate: the highest complete iteration"
    done = subprocess.run([sys.executable, "-m", "mapush_rllib.evaluate", "--policy", str(second), "--json",
                           "--num-envs", "2", "--no-contribution"], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "damaged" in done.stderr and state.name in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    expected = (third.name, verify(third).training_iteration, expected_resume(trial)[2])
    status, output = run_to_end(config, storage, tmp_path / "resume.log", "--resume")
    assert status == 0, output[-4000:]
    assert_resumed_as_expected(trial, expected, output)
    assert f"passed over {newest.name}: incomplete" in output and f"passed over {second.name}: damaged" in output
    assert f"{state_file.name} was cut" in output, "Tune's experiment state came back from its staging copy"
    for folder in (newest, second):
        assert (trial / f"passed_over_{folder.name}").is_dir(), "kept aside for inspection"
    assert result_rows(trial)[-1]["training_iteration"] == 16


def test_a_run_in_use_is_not_resumed_and_a_changed_experiment_is_refused(tmp_path: Path, capsys) -> None:
    """Items 2 and 5: `--resume` while the run trains would train its members from two processes; a resume with
    other settings would silently ignore them. Both stop with one message and change nothing."""
    config = write_config("smoke.yaml", tmp_path, run={"stop": {"training_iterations": 400}})
    storage, log = tmp_path / "runs", tmp_path / "run.log"
    process = launch(config, storage, log)
    try:
        deadline = time.monotonic() + 600
        while not any(complete_count(m) >= 1 for m in members(storage)):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
        assert main([str(config), "--storage", str(storage), "--resume"]) == 2
        err = capsys.readouterr().err
        assert "is in use by a running population.run (pid" in err and "Traceback" not in err, err
    finally:
        kill_group(process)
    (run_dir,) = storage.iterdir()
    RunLock(run_dir).release()  # the killed run's lock went with it
    rows = (members(storage)[0] / "result.json").read_text()
    assert main([str(config), "--storage", str(storage), "--resume", "--set", "simulator.num_envs=8",
                 "--set", "training.lr=0.001"]) == 2
    err = capsys.readouterr().err
    assert "simulator.num_envs: 16 in the run, 8 now" in err and "training.lr:" in err, err
    assert (members(storage)[0] / "result.json").read_text() == rows, "nothing changed"


def test_a_run_saved_before_a_setting_existed_resumes_with_the_value_it_ran_with() -> None:
    """A PBT run saved before `pbt.shared_reward_terms` mutated own_push per agent: its resume compares against
    [] (what it ran with), so `--set pbt.shared_reward_terms=[]` resumes it and the new default is refused."""
    saved = {"pbt": {"population_size": 4}, "run": {"name": "old"}}
    then = {**saved, "pbt": {**saved["pbt"], "shared_reward_terms": []}}
    assert changed_settings(with_added_settings(saved), then) == []
    now = {**saved, "pbt": {**saved["pbt"], "shared_reward_terms": ["own_push"]}}
    assert changed_settings(with_added_settings(saved), now) == [
        "pbt.shared_reward_terms: [] in the run, ['own_push'] now"]
    single = {"pbt": None, "run": {"name": "old"}}
    assert with_added_settings(single) == single, "a run without PBT gains nothing"
    assert "shared_reward_terms" not in saved["pbt"], "the saved dict is not changed"
    # A run saved before joint_push existed ran without it: it resumes with the term off, and only off.
    before = {"rewards": {"scales": {"own_push": 0.02}}, "pbt": None}
    off = {"rewards": {"scales": {"own_push": 0.02, "joint_push": 0.0}}, "pbt": None}
    assert changed_settings(with_added_settings(before), off) == []
    on = {"rewards": {"scales": {"own_push": 0.02, "joint_push": 0.02}}, "pbt": None}
    assert changed_settings(with_added_settings(before), on) == [
        "rewards.scales.joint_push: 0.0 in the run, 0.02 now"]


def test_new_runs_in_the_same_second_get_their_own_folders_and_resume_finds_the_exact_name(tmp_path) -> None:
    """Items 3 and 4."""
    first, second = new_run_dir(tmp_path, "single"), new_run_dir(tmp_path, "single")
    assert first != second and first.is_dir() and second.is_dir()
    for path, name in ((tmp_path / "single_2026-01-01_00-00-00", "single"),
                       (tmp_path / "single_2026-01-01_00-00-00_1", "single"),
                       (tmp_path / "single_same_budget_2026-12-31_00-00-00", "single_same_budget")):
        path.mkdir()
        (path / "experiment.yaml").write_text(f"run: {{name: {name}}}\n")
    newest_single = max((first, second), key=lambda p: p.name)
    assert find_run(tmp_path, "single") is None or find_run(tmp_path, "single") != tmp_path / (
        "single_same_budget_2026-12-31_00-00-00")
    (newest_single / "experiment.yaml").write_text("run: {name: single}\n")
    assert find_run(tmp_path, "single") == newest_single
    shutil.rmtree(first), shutil.rmtree(second)
    assert find_run(tmp_path, "single") == tmp_path / "single_2026-01-01_00-00-00_1"
    assert find_run(tmp_path, "single_same_budget") == tmp_path / "single_same_budget_2026-12-31_00-00-00"
    lock = RunLock(tmp_path / "single_2026-01-01_00-00-00")
    assert (tmp_path / "single_2026-01-01_00-00-00" / LOCK_FILE).exists()
    lock.release()


def test_a_member_whose_losses_go_non_finite_fails_loudly(tmp_path: Path) -> None:
    """Item 6: lr 1e6 trained 30 iterations on NaN with exit 0. Now the member fails, Tune restores it
    (run.max_failures), it diverges again, and the run exits 1 naming the cause."""
    config = write_config("smoke.yaml", tmp_path, training={"lr": 1.0e6},
                          run={"stop": {"training_iterations": 30}, "max_failures": 1})
    status, output = run_to_end(config, tmp_path / "runs", tmp_path / "run.log")
    assert status == 1, output[-3000:]
    failures = re.findall(r"TrainingDivergedError: training diverged at iteration \d+: [^\n]*=nan", output)
    assert len(failures) >= 2, "it failed, was restored once, and failed again"
    assert re.search(r"error: member 0 failed: .*training diverged", output)


def test_members_that_cannot_all_be_placed_stop_before_training(tmp_path: Path) -> None:
    """Item 9: `run.resources.cpus: 1000` left the trial PENDING forever."""
    config = write_config("smoke.yaml", tmp_path, run={"resources": {"cpus": 1000}})
    status, output = run_to_end(config, tmp_path / "runs", tmp_path / "run.log")
    assert status == 2, output[-3000:]
    assert re.search(r"error: run.resources.cpus .*1000 CPU .* the Ray cluster has \d+", output), output[-3000:]
    assert not any((tmp_path / "runs").iterdir()), "no empty run folder is left behind"


@pytest.mark.parametrize(("args", "words"), [
    (["--config", "LIST"], "must be an experiment file"),
    (["--config", "BROKEN"], "is not valid YAML"),
    (["--render", "out.png"], "must end in .gif"),
    (["--render", "/proc/no/out.gif"], "--render: cannot write into"),
    (["--render", "a.gif", "--render-envs", "0"], "--render-envs must be at least 1"),
])
def test_evaluate_rejects_bad_arguments_before_it_evaluates(tmp_path: Path, args: list[str], words: str) -> None:
    """Item 10: tracebacks, some after the whole evaluation had run."""
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("simulator: [\n")
    args = [{"LIST": str(tmp_path / "list.yaml"), "BROKEN": str(tmp_path / "broken.yaml")}.get(a, a) for a in args]
    done = subprocess.run([sys.executable, "-m", "mapush_rllib.evaluate", "--num-envs", "2", *args],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().startswith("error: ") and words in done.stderr and "Traceback" not in done.stderr
    assert "episodes" not in done.stderr, "nothing was evaluated first"


def test_pbt_run_killed_at_any_moment_resumes_each_member_from_its_newest_complete_checkpoint(tmp_path) -> None:
    """The kill -9 test of the issue: a PBT run killed while checkpoints are being written, right after, and in
    between, resumed each time: every member continues from its newest complete checkpoint, no result row is
    lost or repeated, and the run finishes."""
    config = write_config("pbt_smoke.yaml", tmp_path, run={"stop": {"training_iterations": 16}})
    storage = tmp_path / "runs"
    folders = lambda: sum(len(trial_checkpoints(m)) for m in members(storage))  # noqa: E731
    complete = lambda: sum(complete_count(m) for m in members(storage))  # noqa: E731
    moments = [
        lambda before: folders() > before,  # a checkpoint folder appears: its copy has just begun
        lambda before: complete() > before + 1,  # right after checkpoints were completed
        lambda before: folders() > before + 2,  # later, mid-run
    ]
    process = launch(config, storage, tmp_path / "run.log")
    for attempt, moment in enumerate(moments):
        baseline = folders() if attempt != 1 else complete()
        kill_when(process, lambda: moment(baseline), tmp_path / "run.log")  # noqa: B023
        expected = {trial.name: expected_resume(trial) for trial in members(storage)}
        log = tmp_path / f"resume{attempt}.log"
        process = launch(config, storage, log, "--resume")
        deadline = time.monotonic() + 600
        while "continues from" not in log.read_text():  # printed once the run folder is recovered
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
        def every_member_logged_past_its_checkpoint(expected: dict = expected) -> bool:
            return all(len(result_lines(trial)) > len(expected.get(trial.name, (None, 0, []))[2])
                       for trial in members(storage))


        while not every_member_logged_past_its_checkpoint():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
        for trial in members(storage):
            assert_resumed_as_expected(trial, expected[trial.name], log.read_text())
        tmp_path.joinpath("run.log").write_text(log.read_text())
    status = process.wait(timeout=900)
    kill_group(process)
    assert status == 0, log.read_text()[-6000:]
    for trial in members(storage):
        assert result_rows(trial)[-1]["training_iteration"] == 16, "the run finished"


def test_a_gpu_config_without_a_gpu_stops_before_training(tmp_path: Path) -> None:
    """Issue 14's bad input: `configs/pbt_gpu.yaml` on a machine whose Ray cluster has no GPU."""
    status, output = run_to_end(REPO / "configs" / "pbt_gpu.yaml", tmp_path / "runs", tmp_path / "run.log")
    assert status == 2, output[-3000:]
    assert re.search(r"error: (simulator.device: cuda|run.resources.gpus: .* the Ray cluster has 0)", output)
    assert not any((tmp_path / "runs").iterdir())


def test_members_sharing_a_gpu_without_mps_get_a_hint(tmp_path: Path, monkeypatch) -> None:
    """`configs/pbt_gpu.yaml` puts four members on one GPU: without an MPS daemon they take turns on it, and the run
    says so once (pointing at the README); with the daemon's pipe present, with a whole GPU per member or on a
    cluster, it says nothing."""
    from population.config import load_experiment
    from population.run import mps_hint

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path / "mps_pipe"))
    shared = load_experiment(REPO / "configs" / "pbt_gpu.yaml")
    hint = mps_hint(shared, 4, None)
    assert hint is not None and "4 members share each GPU (run.resources.gpus: 0.25)" in hint
    assert str(tmp_path / "mps_pipe" / "control") in hint and "README" in hint
    assert mps_hint(shared, 4, "127.0.0.1:6379") is None, "a cluster's machines are not this one"
    whole_gpu = load_experiment(REPO / "configs" / "pbt_gpu.yaml", overrides=["run.resources.gpus=1"])
    assert mps_hint(whole_gpu, 4, None) is None
    assert mps_hint(load_experiment(REPO / "configs" / "pbt.yaml"), 4, None) is None, "a CPU population"
    (tmp_path / "mps_pipe").mkdir()
    (tmp_path / "mps_pipe" / "control").touch()  # what a running control daemon leaves in its pipe folder
    assert mps_hint(shared, 4, None) is None
