"""MAPushPPO on a real local Ray: remote batched runners, live settings, env state in checkpoints."""

from __future__ import annotations

import pytest
import ray
import torch

from mapush_rllib.algorithm import MAPushPPO
from mapush_rllib.live_settings import apply_live_settings, read_env_reward_scales, read_live_settings
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import RewardConfig, TaskConfig
from mapush_rllib.training import TrainingConfig, build_ppo_config

pytestmark = pytest.mark.ray

NUM_ENVS = 8


class CountingSchedule:
    """A minimal TaskSchedule with state: counts finished episodes per env, never changes the task."""

    def __init__(self, num_envs: int) -> None:
        self.episodes = torch.zeros(num_envs, dtype=torch.long)

    def episode_end(self, env_ids: torch.Tensor, success: torch.Tensor) -> None:
        self.episodes[env_ids] += 1

    def task_params(self, env_ids: torch.Tensor) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {"episodes": self.episodes.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.episodes.copy_(state["episodes"])


def counting_schedule(env_config: dict, num_envs: int, env_id_offset: int) -> CountingSchedule:
    return CountingSchedule(num_envs)


def schedule_counts(algo) -> list:
    def counts(env_runner):
        return None if env_runner.vec_env is None else env_runner.vec_env.task_schedule.episodes.tolist()

    return algo.env_runner_group.foreach_env_runner(counts, local_env_runner=True)


@pytest.fixture(scope="module")
def algo():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    config = build_ppo_config(
        TrainingConfig(num_env_runners=1, rollout_steps=20, num_epochs=1, num_minibatches=1),
        SimConfig(num_envs=NUM_ENVS, num_threads=1),
        TaskConfig(episode_length_s=0.2),  # 10-step episodes: several finish per iteration
        RewardConfig(),
        seed=2,
        task_schedule_factory=counting_schedule,
    ).env_runners(num_cpus_per_env_runner=0.5).resources(num_cpus_for_main_process=0.5).learners(num_cpus_per_learner=0.5)
    algorithm = config.build_algo()
    yield algorithm
    algorithm.stop()
    ray.shutdown()


def test_remote_batched_runner_trains_and_reports_task_metrics(algo) -> None:
    modules = algo.learner_group._learner.module.items()
    before = {mid: {k: v.clone() for k, v in m.state_dict().items()} for mid, m in modules}
    result = algo.train()
    result = algo.train()
    # The remote runner (index 1) owns global env ids N..2N-1; the local runner has no envs.
    ids = algo.env_runner_group.foreach_env_runner(
        lambda r: None if r.vec_env is None else r.vec_env.env_ids.tolist(), local_env_runner=True
    )
    assert ids == [None, list(range(NUM_ENVS, 2 * NUM_ENVS))]
    metrics = result["env_runners"]
    assert metrics["num_env_steps_sampled"] == 20 * NUM_ENVS
    assert metrics["mapush"]["window_episodes"] >= NUM_ENVS
    assert 0.0 <= metrics["mapush"]["success_rate"] <= 1.0
    assert set(metrics["mapush"]["engagement"]) == {"agent_0", "agent_1"}
    assert set(result["learners"]) >= {"policy_0", "policy_1"}
    modules = algo.learner_group._learner.module
    for module_id, module in modules.items():
        assert any(not torch.equal(before[module_id][k], v) for k, v in module.state_dict().items()), module_id
    assert not torch.equal(modules["policy_0"].actor[0].weight, modules["policy_1"].actor[0].weight)
    # The remote runner acts with the learner's (inference-only) weights.
    remote = algo.env_runner_group.foreach_env_runner(
        lambda r: r.module["policy_1"].actor[0].weight.clone(), local_env_runner=False
    )[0]
    assert torch.equal(remote, modules["policy_1"].actor[0].weight.detach())


def test_live_settings_reach_learners_and_every_env(algo) -> None:
    apply_live_settings(algo, reward_scales={"agent_1": {"ocb": 0.02}}, entropy_coeff={"policy_1": 0.05}, lr=2e-4)
    live = read_live_settings(algo)
    assert live["policy_1"] == {"entropy_coeff": pytest.approx(0.05), "lr": pytest.approx(2e-4)}
    assert live["policy_0"]["entropy_coeff"] == pytest.approx(0.001)
    assert live["reward_scales"]["agent_1"]["ocb"] == pytest.approx(0.02)
    assert live["reward_scales"]["agent_0"]["ocb"] == pytest.approx(0.004)
    assert [table["agent_1"]["ocb"] for table in read_env_reward_scales(algo)] == [pytest.approx(0.02)]
    result = algo.train()
    assert result["learners"]["policy_1"]["curr_entropy_coeff"] == pytest.approx(0.05)
    assert result["learners"]["policy_0"]["curr_entropy_coeff"] == pytest.approx(0.001)
    assert result["learners"]["policy_0"]["default_optimizer_learning_rate"] == pytest.approx(2e-4)
    assert result["live_settings"]["reward_scales"]["agent_1"]["ocb"] == pytest.approx(0.02)
    # A rebuilt env keeps the new scales (the env config was updated too).
    algo.env_runner_group.foreach_env_runner(lambda r: r.make_env(), local_env_runner=False)
    assert [table["agent_1"]["ocb"] for table in read_env_reward_scales(algo)] == [pytest.approx(0.02)]
    with pytest.raises(ValueError, match="policy_9"):
        apply_live_settings(algo, entropy_coeff={"policy_9": 0.1})
    with pytest.raises(ValueError, match="ocbb"):
        apply_live_settings(algo, reward_scales={"ocbb": 1.0})
    assert read_live_settings(algo)["policy_1"]["entropy_coeff"] == pytest.approx(0.05)


def test_checkpoint_carries_the_task_schedule_state(algo, tmp_path) -> None:
    algo.train()
    saved_counts = schedule_counts(algo)
    assert saved_counts[0] is None and sum(saved_counts[1]) > 0
    path = algo.save_to_path(tmp_path / "checkpoint")
    algo.train()
    assert schedule_counts(algo) != saved_counts

    restored = MAPushPPO.from_checkpoint(path)
    try:
        assert schedule_counts(restored) == saved_counts
        weights = restored.learner_group._learner.module["policy_0"].actor[0].weight
        algo.restore_from_path(path)
        assert schedule_counts(algo) == saved_counts
        assert torch.equal(weights, algo.learner_group._learner.module["policy_0"].actor[0].weight)
    finally:
        restored.stop()


def test_shared_central_critic_policy_trains_and_acts_on_8d_observations(algo, tmp_path) -> None:
    """One PPO iteration with a shared policy whose critic sees the global state; the saved actor needs 8-D only."""
    from mapush_rllib.checkpoint_policy import load_checkpoint_policy

    config = build_ppo_config(
        TrainingConfig(share_policy=True, central_critic=True, rollout_steps=16, num_epochs=1, num_minibatches=1),
        SimConfig(num_envs=4, num_threads=1), TaskConfig(episode_length_s=0.2), RewardConfig(), seed=4,
    ).resources(num_cpus_for_main_process=0.5).learners(num_cpus_per_learner=0.5)
    shared = config.build_algo()
    try:
        result = shared.train()
        assert set(result["learners"]) >= {"shared_policy"}
        assert result["learners"]["shared_policy"]["num_module_steps_trained"] >= 2 * 16 * 4  # both agents' rows
        module = shared.learner_group._learner.module["shared_policy"]
        assert module.critic[0].in_features == 25 and module.actor[0].in_features == 8
        path = shared.save_to_path(tmp_path / "shared")
    finally:
        shared.stop()
    policy, info = load_checkpoint_policy(str(path))
    assert info["agent_modules"] == {"agent_0": "shared_policy", "agent_1": "shared_policy"} and info["central_critic"]
    actions = policy(torch.randn(3, 2, 8))
    assert actions.shape == (3, 2, 3)


def test_a_new_algorithm_starts_from_a_checkpoints_policies(algo, tmp_path) -> None:
    """`run.initial_policy`: before its first iteration a new algorithm's learner and its remote runner hold the
    trained checkpoint's weights, actor and critic; without the callback the same config starts elsewhere."""
    from mapush_rllib.checkpoint_policy import StartFromCheckpoint

    algo.train()
    path = algo.save_to_path(tmp_path / "trained")
    trained = {mid: {k: v.clone() for k, v in algo.learner_group._learner.module[mid].state_dict().items()}
               for mid in ("policy_0", "policy_1")}

    def runner_actor(algorithm) -> torch.Tensor:
        (weight,) = algorithm.env_runner_group.foreach_env_runner(
            lambda runner: runner.module["policy_1"].actor[0].weight.detach().clone(), local_env_runner=False)
        return weight

    for start_from in (StartFromCheckpoint(str(path)), None):
        started = algo.config.copy(copy_frozen=False).callbacks(on_algorithm_init=start_from).build_algo()
        try:
            modules = started.learner_group._learner.module
            same = [torch.equal(value, modules[mid].state_dict()[key])
                    for mid, state in trained.items() for key, value in state.items()]
            runner_same = torch.equal(runner_actor(started), trained["policy_1"]["actor.0.weight"])
        finally:
            started.stop()
        assert (all(same) and runner_same) if start_from else not (any(same) or runner_same)


@pytest.mark.parametrize("tampered", ["learner entropy", "env reward scale"])
def test_restore_fails_loudly_when_a_live_value_was_silently_reverted(tampered, tmp_path) -> None:
    """The post-restore invariant check (ray#62173 / ray#54755 class of bugs): a value the learner or an env
    holds behind the config's back makes every restore raise, naming the value."""
    from ray.rllib.utils.schedules.scheduler import Scheduler

    from mapush_rllib.live_settings import LiveSettingsMismatch
    from mapush_rllib.runner import BatchedEnvRunner  # noqa: F401  (the runner the config names)

    config = build_ppo_config(
        TrainingConfig(rollout_steps=8, num_minibatches=1, num_epochs=1),
        SimConfig(num_envs=2, num_threads=1), TaskConfig(), RewardConfig(), seed=0,
    )
    algorithm = config.build_algo()
    try:
        path = algorithm.save_to_path(tmp_path / "checkpoint")
        algorithm.restore_from_path(path)  # consistent: passes
        if tampered == "learner entropy":
            def revert(learner) -> None:
                learner.entropy_coeff_schedulers_per_module["policy_0"] = Scheduler(
                    0.123, framework="torch", device=learner._device)
            for call in algorithm.learner_group.foreach_learner(revert):
                call.get()
            expected = "policy_0.entropy_coeff: live 0.123"
        else:
            def revert(env_runner) -> None:
                from mapush_rllib.env import runner_vec_envs
                runner_vec_envs(env_runner)[0].set_reward_scales({"agent_1": {"ocb": 0.5}})
            algorithm.env_runner_group.foreach_env_runner(revert, local_env_runner=True)
            expected = "reward_scales.agent_1.ocb: live 0.5, config 0.004"
        with pytest.raises(LiveSettingsMismatch, match=expected):
            algorithm.restore_from_path(path)
    finally:
        algorithm.stop()
