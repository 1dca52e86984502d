"""The curriculum in real RLlib/Tune runs: levels move in every env runner, survive a killed training process
(restore in a new process, `Tuner.restore`), and come back when a remote env runner actor is recreated.

One training process (`python -m population.run`, 2 remote env runners) is SIGKILLed once Tune has
registered a checkpoint. Then, in new processes: `MAPushPPO.from_checkpoint` must hold exactly the saved
levels, outcome windows and RNG counters in every runner; killed runner actors must get them back;
`Tuner.restore` must resume the trial at the checkpoint's curriculum, log it, and keep training.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import ray
import torch

from curriculum import CurriculumStats
from curriculum.scheduler import STATE_TENSORS
from mapush_rllib.algorithm import MAPushPPO
from mapush_rllib.checkpoints import ENV_STATE_KEY
from mapush_rllib.env import runner_vec_envs
from population.config import load_experiment
from population.curriculum_hooks import curriculum_schedule
from population.run import build_algorithm_config

from ..processes import kill_group

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
NUM_ENVS = 8  # per env runner
RUNNERS = (1, 2)  # remote env runner indices; the local runner (0) has no envs
OVERRIDES = [
    "run.name=resume",
    f"simulator.num_envs={NUM_ENVS}",
    "training.num_env_runners=2",
    "run.resources.cpus=0.5",
    "run.resources.cpus_per_env_runner=0.5",
    "run.resources.ray_num_cpus=2",
    "run.stop.training_iterations=1000000",  # runs until killed
    "run.checkpoint_every_iterations=2",
]
RESUME = """
import sys
import ray
from ray import tune
from mapush_rllib.algorithm import MAPushPPO
ray.init(num_cpus=2, include_dashboard=False)
tune.Tuner.restore(sys.argv[1], trainable=MAPushPPO, resume_unfinished=True, resume_errored=True).fit()
"""
TIMEOUT_S = 300


def wait_for(condition: Callable[[], object], what: str, process: subprocess.Popen | None = None,
             output: Path | None = None, timeout_s: float = TIMEOUT_S) -> object:
    """Poll `condition` until it returns something truthy; fail if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        tail = output.read_text()[-4000:] if output is not None else ""
        if process is not None and process.poll() is not None:
            pytest.fail(f"process exited ({process.returncode}) while waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{tail}")
        time.sleep(0.25)  # polling interval, not synchronisation


def start(args: list[str], output: Path) -> subprocess.Popen:
    """A process in its own process group (Ray's agents join it), output to a file."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TUNE_GLOBAL_CHECKPOINT_S": "0"}  # save Tune state each step
    with open(output, "w") as out:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def tune_state_iteration(experiment_dir: Path) -> int:
    """The last training iteration recorded in Tune's experiment state (0 while none is readable)."""
    for path in experiment_dir.glob("experiment_state-*.json"):
        try:
            trial = json.loads(json.loads(path.read_text())["trial_data"][0][1])
            return int((trial.get("last_result") or {}).get("training_iteration", 0))
        except (ValueError, KeyError, IndexError):  # being written
            return 0
    return 0


def result_rows(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line being written
            break
    return rows


def saved_env_state(checkpoint: Path) -> tuple[int, dict]:
    with open(checkpoint / "algorithm_state.pkl", "rb") as f:
        state = pickle.load(f)
    return state["training_iteration"], state[ENV_STATE_KEY]


def runner_states(algo) -> dict[int, list[dict]]:
    replies = algo.env_runner_group.foreach_env_runner(
        lambda r: (r.worker_index, [vec_env.task_schedule.state_dict() for vec_env in runner_vec_envs(r)]),
        local_env_runner=True,
    )
    return {index: states for index, states in replies if states}


def runner_pid(algo, index: int) -> int:
    return algo.env_runner_group.foreach_env_runner(
        lambda r: os.getpid(), remote_worker_ids=[index], local_env_runner=False
    )[0]


def episode_steps(algo) -> dict[int, list[int]]:
    """Steps into its running episode of every env, per runner."""
    replies = algo.env_runner_group.foreach_env_runner(
        lambda r: (r.worker_index, [step for vec_env in runner_vec_envs(r) for step in vec_env.step_count.tolist()]),
        local_env_runner=True,
    )
    return {index: steps for index, steps in replies if steps}


def assert_same_state(actual: dict, expected: dict, names=STATE_TENSORS) -> None:
    assert actual["seed"] == expected["seed"]
    for name in names:
        assert torch.equal(actual[name], expected[name]), name


@pytest.fixture(scope="module")
def experiment():
    return load_experiment(REPO / "configs" / "smoke.yaml", overrides=OVERRIDES)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, experiment) -> dict:
    """Train until Tune has registered the checkpoint of iteration 4, then SIGKILL the whole process group."""
    storage = tmp_path_factory.mktemp("runs")
    output = storage / "first.log"
    process = start(
        [sys.executable, "-m", "population.run", "configs/smoke.yaml", "--storage", str(storage),
         *[arg for override in OVERRIDES for arg in ("--set", override)]],
        output,
    )
    def iteration() -> int:  # the run's folder is <run.name>_<date>
        return max((tune_state_iteration(path) for path in storage.glob("resume_*")), default=0)

    try:
        # Tune checkpoints after iteration 4 before it starts iteration 5, so a saved experiment state that
        # has seen iteration 5 also lists that checkpoint.
        wait_for(lambda: iteration() >= 5, "iteration 5 in Tune's state", process, output)
    finally:
        kill_group(process)
    (experiment_dir,) = storage.glob("resume_*")
    trial_dir = next(experiment_dir.glob("member_*"))
    return {"experiment_dir": experiment_dir, "trial_dir": trial_dir, "rows_before": len(result_rows(trial_dir)),
            "log": output}


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_new_process_restores_levels_windows_and_rng_of_every_runner(killed_run, experiment, local_ray) -> None:
    checkpoint = killed_run["trial_dir"] / "checkpoint_000001"
    iteration, saved = saved_env_state(checkpoint)
    assert iteration == 4 and sorted(saved) == list(RUNNERS)
    # Levels moved in the envs of every runner: compare with where a fresh scheduler starts them.
    env_config = build_algorithm_config(experiment).env_config
    for index in RUNNERS:
        state = saved[index][0]
        initial = curriculum_schedule(env_config, NUM_ENVS, index * NUM_ENVS).levels
        assert (state["levels"] != initial).any(), f"runner {index}: levels never changed"
        assert state["window_count"].sum() > 0 and state["tickets_issued"].sum() > 0

    algo = MAPushPPO.from_checkpoint(str(checkpoint))
    try:
        restored = runner_states(algo)
        assert sorted(restored) == list(RUNNERS)
        for index in RUNNERS:
            assert_same_state(restored[index][0], saved[index][0])

        result = algo.train()
        assert result["training_iteration"] == 5
        curriculum = result["curriculum"]
        assert curriculum["eval_envs"] == 2 and not math.isnan(curriculum["level_mean"])
        assert sum(curriculum["level_hist"].values()) == pytest.approx(1.0)
        # Every env started a new episode at the restore (one draw), 32 steps ago: 50-step episodes that had
        # continued from the checkpoint (28 steps in) would have ended and restarted 10 steps ago.
        assert episode_steps(algo) == {index: [32] * NUM_ENVS for index in RUNNERS}
        after = runner_states(algo)
        for index in RUNNERS:
            assert torch.equal(after[index][0]["draws"], saved[index][0]["draws"] + 1)
            assert after[index][0]["demotions"] >= saved[index][0]["demotions"]

        # A runner actor that Ray restarts without RLlib noticing gets its state back before it samples.
        before = runner_states(algo)[2][0]
        old_pid = runner_pid(algo, 2)
        handle = algo.env_runner_group.foreach_env_runner(
            lambda r: ray.get_runtime_context().current_actor, remote_worker_ids=[2], local_env_runner=False
        )[0]
        ray.kill(handle, no_restart=False)

        def restarted() -> bool:  # ray.kill returns before the actor is gone: wait for another process to answer
            try:
                return ray.get(handle.apply.remote(lambda r: os.getpid()), timeout=10) != old_pid
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                return False

        wait_for(restarted, "the killed runner actor to restart")
        fresh = ray.get(handle.apply.remote(lambda r: r.vec_env.task_schedule.state_dict()))
        assert not torch.equal(fresh["draws"], before["draws"])  # a new actor, a new scheduler
        algo.sync_env_state()  # what every training step does first
        assert_same_state(runner_states(algo)[2][0], before)
        result = algo.train()
        assert result["training_iteration"] == 6 and result["curriculum"]["env_runner_restores"] == 1
        assert algo.env_runner_group.num_remote_worker_restarts() == 0  # RLlib never saw it go

        # A runner killed just before sampling: RLlib takes it out, Ray restarts it, RLlib restores it
        # (on_env_runners_recreated), and it continues from its state at the end of the last iteration.
        before = runner_states(algo)[1][0]
        old_pid = runner_pid(algo, 1)
        handle = algo.env_runner_group.foreach_env_runner(
            lambda r: ray.get_runtime_context().current_actor, remote_worker_ids=[1], local_env_runner=False
        )[0]
        ray.kill(handle, no_restart=False)

        def gone() -> bool:  # the old process no longer answers; the restart takes seconds
            try:
                ray.get(handle.apply.remote(lambda r: None), timeout=10)
            except ray.exceptions.RayActorError:
                return True
            except ray.exceptions.GetTimeoutError:
                pass
            return False

        wait_for(gone, "the killed runner actor to go down")

        def trained_until_restored():
            result = algo.train()
            return result if result["curriculum"]["env_runner_restores"] == 2 else None

        result = wait_for(trained_until_restored, "RLlib to bring the killed runner back")
        assert runner_pid(algo, 1) != old_pid and algo.env_runner_group.num_remote_worker_restarts() == 1
        state = runner_states(algo)[1][0]
        assert (state["draws"] >= before["draws"] + 1).all()  # continued from `before`, then restarted episodes
        assert state["demotions"] >= before["demotions"] and state["tickets_issued"].sum() > 0
    finally:
        algo.stop()


def test_tuner_restore_resumes_the_curriculum_logs_it_and_keeps_training(killed_run, experiment) -> None:
    trial_dir, rows_before = killed_run["trial_dir"], killed_run["rows_before"]
    output = killed_run["experiment_dir"].parent / "resume.log"
    process = start([sys.executable, "-c", RESUME, str(killed_run["experiment_dir"])], output)

    def rows_after_resume() -> list[dict] | None:
        rows = result_rows(trial_dir)[rows_before:]
        return rows if len(rows) >= 2 else None

    try:
        new_rows = wait_for(rows_after_resume, "two iterations after the resume", process, output)
        resumed_at = int(new_rows[0]["curriculum"]["resumed"]["iteration"])
        wait_for(lambda: f"continues from a checkpoint of iteration {resumed_at};" in output.read_text(),
                 "the resume log line", process, output)
    finally:
        kill_group(process)

    # Training continued from the checkpoint Tune restored.
    assert [row["training_iteration"] for row in new_rows[:2]] == [resumed_at + 1, resumed_at + 2]
    assert resumed_at >= 4
    checkpoints = {saved_env_state(path)[0]: path for path in trial_dir.glob("checkpoint_*")
                   if (path / "algorithm_state.pkl").exists()}
    _, saved = saved_env_state(checkpoints[resumed_at])

    # The curriculum it resumed at is the checkpoint's: the same level histogram, windows and counters.
    env_config = build_algorithm_config(experiment).env_config
    parts = []
    for index in RUNNERS:
        scheduler = curriculum_schedule(env_config, NUM_ENVS, index * NUM_ENVS)
        scheduler.load_state_dict(saved[index][0])
        parts.append(scheduler.stats())
    expected = CurriculumStats.merge(parts).metrics()
    resumed = new_rows[0]["curriculum"]["resumed"]
    for key in ("level_mean", "level_max", "promotions", "demotions", "full_task_success_rate"):
        want = expected.get(f"curriculum/{key}", math.nan)
        assert resumed[key] == pytest.approx(want, nan_ok=True), key
    assert CurriculumStats.merge(parts).summary() in output.read_text()
    for row in new_rows:  # kept for the rest of the run (compared as JSON: NaN != NaN)
        assert json.dumps(row["curriculum"]["resumed"]) == json.dumps(resumed)


def test_stock_runner_restores_and_restarts_its_episodes(tmp_path, local_ray) -> None:
    """RLlib's own env runner (one MAPushMultiAgentEnv, so one scheduler, per env): restore and env rebuilds."""
    experiment = load_experiment(REPO / "configs" / "smoke.yaml", overrides=[
        "training.runner=stock", "simulator.num_envs=4", "training.num_env_runners=0",
    ])
    algo = build_algorithm_config(experiment).build_algo()
    try:
        algo.train()
        algo.train()
        saved = runner_states(algo)[0]
        assert len(saved) == 4 and sum(int(state["tickets_issued"].sum()) for state in saved) > 0
        path = algo.save_to_path(tmp_path / "checkpoint")
        algo.train()
        algo.train()  # 64 steps: every env ends an episode (50 steps) and draws its next task
        assert any(not torch.equal(a["draws"], b["draws"]) for a, b in zip(runner_states(algo)[0], saved, strict=True))

        algo.restore_from_path(path)
        for restored, expected in zip(runner_states(algo)[0], saved, strict=True):
            assert_same_state(restored, expected)
        result = algo.train()  # every sub-env starts a new episode first: one more draw each
        assert result["training_iteration"] == 3
        assert episode_steps(algo) == {0: [32] * 4}  # (continued episodes would be 64 + 32 - 50 = 46 steps in)
        for now, expected in zip(runner_states(algo)[0], saved, strict=True):
            assert torch.equal(now["draws"], expected["draws"] + 1)

        # Rebuilt envs (make_env) start from scratch; the next training step gives them their state back.
        before = runner_states(algo)[0]
        algo.env_runner_group.foreach_env_runner(lambda r: r.make_env(), local_env_runner=True)
        assert any(not torch.equal(a["draws"], b["draws"]) for a, b in zip(runner_states(algo)[0], before, strict=True))
        algo.sync_env_state()
        for now, expected in zip(runner_states(algo)[0], before, strict=True):
            assert_same_state(now, expected)
        assert algo.train()["curriculum"]["env_runner_restores"] == 1

        # A PBT exploit restores the leader's checkpoint into a member built from its own config (here another
        # seed): the member takes the leader's curriculum state wholesale, curriculum seed included.
        member_experiment = experiment.model_copy(update={"run": experiment.run.model_copy(update={"seed": 1})})
        member = build_algorithm_config(member_experiment).build_algo()
        try:
            assert all(state["seed"] == 1 for state in runner_states(member)[0])
            member.restore_from_path(path)
            for now, expected in zip(runner_states(member)[0], saved, strict=True):
                assert_same_state(now, expected)
        finally:
            member.stop()
    finally:
        algo.stop()
