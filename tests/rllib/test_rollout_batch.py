"""The bulk learner batch (`training.learner_batch: bulk`) equals what RLlib's learner connectors build.

The same batched runner configuration samples twice in lockstep, once returning episode chunks and once its
`RolloutBatch` (same weights, same torch seed, the deterministic CPU simulator), so the two learner inputs hold
the same steps. Every column of the training batch must then be identical bit for bit -- rows, their order,
the bootstrap rows, values, GAE advantages and value targets -- and a PPO update from either input must leave
the same weights.
"""

from __future__ import annotations

import copy
import os
import traceback

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.evaluation.postprocessing import Postprocessing
from torch.overrides import TorchFunctionMode

from mapush_rllib.learner import MAPushPPOLearner
from mapush_rllib.rollout_batch import RolloutBatch, chunk_layout
from mapush_rllib.runner import BatchedEnvRunner
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import RewardConfig, TaskConfig
from mapush_rllib.training import TrainingConfig, build_ppo_config

ROLLOUT = 8
NUM_ENVS = 4
#: `cuda` runs these checks with the runner, simulator tensors and learner on the GPU (benchmarks/RESULTS.md).
DEVICE = os.environ.get("MAPUSH_TEST_DEVICE", "cpu")
TASKS = {
    "continuing-then-truncated": TaskConfig(episode_length_s=2 * ROLLOUT * 0.02, agent_collision_distance_m=0.0),
    "terminated-every-step": TaskConfig(agent_collision_distance_m=10.0),
    "mixed-ends": TaskConfig(episode_length_s=0.1, agent_collision_distance_m=1.0),
}


def make_config(task: TaskConfig, learner_batch: str, **training: object):
    config = build_ppo_config(
        TrainingConfig(rollout_steps=ROLLOUT, learner_batch=learner_batch, **training),
        SimConfig(num_envs=NUM_ENVS, num_threads=1, device=DEVICE), task, RewardConfig(), seed=5,
    )
    return config.learners(num_gpus_per_learner=1 if DEVICE.startswith("cuda") else 0)


def make_pair(task: TaskConfig, worker_index: int = 0, **training: object):
    """An episodes runner, a bulk runner with the same weights, and a bulk-capable learner with those weights."""
    episodes = BatchedEnvRunner(config=make_config(task, "episodes", **training), worker_index=worker_index)
    bulk_config = make_config(task, "bulk", **training)
    bulk = BatchedEnvRunner(config=bulk_config, worker_index=worker_index)
    bulk.module.set_state(episodes.module.get_state())
    return episodes, bulk, bulk_config


def sample_both(episodes_runner, bulk_runner, seed: int, explore: bool = True):
    torch.manual_seed(seed)
    episodes = episodes_runner.sample(explore=explore)
    torch.manual_seed(seed)
    rollouts = bulk_runner.sample(explore=explore)
    assert len(rollouts) == 1 and isinstance(rollouts[0], RolloutBatch)
    return episodes, rollouts


def connector_batch(learner, episodes) -> dict:
    return learner._make_batch_if_necessary(TrainingData(episodes=copy.deepcopy(episodes))).policy_batches


def bulk_batch(learner, rollouts) -> dict:
    return learner._make_batch_if_necessary(TrainingData(episodes=rollouts)).policy_batches


def assert_same_batch(expected: dict, actual: dict) -> None:
    assert list(expected) == list(actual), "module order (the order the minibatch iterator shuffles them in)"
    for module_id, columns in expected.items():
        other = actual[module_id]
        assert sorted(columns.keys()) == sorted(other.keys()), module_id
        for column in columns.keys():
            a, b = torch.as_tensor(columns[column]), torch.as_tensor(other[column])
            what = f"{module_id}.{column}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
            assert a.dtype == b.dtype and a.shape == b.shape, what
            assert a.device == b.device, f"{module_id}.{column}"
            assert torch.equal(a, b), f"{module_id}.{column}"
    assert Postprocessing.ADVANTAGES in expected[module_id] and Postprocessing.VALUE_TARGETS in expected[module_id]


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("layout", [{}, {"share_policy": True}, {"central_critic": True}], ids=str)
def test_same_learner_batch(task_name: str, layout: dict) -> None:
    episodes_runner, bulk_runner, config = make_pair(TASKS[task_name], **layout)
    learner = config.build_learner(spaces=episodes_runner.get_spaces())
    assert isinstance(learner, MAPushPPOLearner)
    learner.module.set_state(episodes_runner.module.get_state())  # a critic that is not all zeros
    done = 0
    for call in range(3):  # fresh start, continuing chunks, after resets
        episodes, rollouts = sample_both(episodes_runner, bulk_runner, seed=call)
        done += sum(episode.is_done for episode in episodes)
        assert_same_batch(connector_batch(learner, episodes), bulk_batch(learner, rollouts))
    assert done >= NUM_ENVS  # finished episodes were compared too


def test_same_learner_batch_from_several_runners() -> None:
    """Rollouts of two runners (env ids 4..7 and 8..11) give the batch of their episodes concatenated."""
    pairs = [make_pair(TASKS["mixed-ends"], worker_index=k) for k in (1, 2)]
    for _, bulk, _ in pairs[1:]:
        bulk.module.set_state(pairs[0][0].module.get_state())
    for episodes_runner, _, _ in pairs[1:]:
        episodes_runner.module.set_state(pairs[0][0].module.get_state())
    learner = pairs[0][2].build_learner(spaces=pairs[0][0].get_spaces())
    learner.module.set_state(pairs[0][0].module.get_state())
    for call in range(2):
        samples = [sample_both(e, b, seed=10 * call + k) for k, (e, b, _) in enumerate(pairs)]
        episodes = [episode for pair in samples for episode in pair[0]]
        rollouts = [rollout for pair in samples for rollout in pair[1]]
        assert_same_batch(connector_batch(learner, episodes), bulk_batch(learner, rollouts))


def test_same_update() -> None:
    """One PPO update (2 epochs x 2 minibatches, shuffled) from either input leaves the same weights."""
    episodes_runner, bulk_runner, config = make_pair(TASKS["mixed-ends"], num_epochs=2, num_minibatches=2)
    learners = [config.build_learner(spaces=episodes_runner.get_spaces()) for _ in range(2)]
    for learner in learners:
        learner.module.set_state(episodes_runner.module.get_state())
    episodes, rollouts = sample_both(episodes_runner, bulk_runner, seed=3)
    results = []
    for learner, samples in zip(learners, (episodes, rollouts), strict=True):
        np.random.seed(0)  # RLlib shuffles minibatches with numpy's global generator
        results.append(learner.update(
            episodes=samples, timesteps={"num_env_steps_sampled_lifetime": ROLLOUT * NUM_ENVS},
            num_epochs=config.num_epochs, minibatch_size=config.minibatch_size, shuffle_batch_per_epoch=True,
        ))
    before = episodes_runner.module.get_state()
    after = [learner.module.get_state() for learner in learners]
    for module_id in after[0]:
        for name, value in after[0][module_id].items():
            assert not np.array_equal(value, before[module_id][name]) or "log_std" in name, f"{module_id}.{name}"
            assert np.array_equal(after[1][module_id][name], value), f"{module_id}.{name}"
    for module_id in ("policy_0", "policy_1"):
        assert np.isfinite(results[1][module_id]["total_loss"].peek())


def test_chunk_layout_orders_ended_chunks_by_end_step_then_ongoing_by_env() -> None:
    done = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.bool)  # (T=3, N=3)
    layout = chunk_layout(done)
    # chunks: env1 ends t0 (rank 0), env0 ends t1 (1), env2 ends t2 (2), then ongoing env0 (3), env1 (4)
    assert layout.num_chunks == 5
    assert layout.rank.tolist() == [[1, 0, 2], [1, 4, 2], [3, 4, 2]]
    assert layout.chunk_length.tolist() == [1, 2, 3, 1, 2]
    assert layout.start.tolist() == [[0, 0, 0], [0, 1, 0], [2, 1, 0]]


def test_bulk_needs_the_batched_runner() -> None:
    with pytest.raises(ValueError, match="learner_batch: 'bulk' needs runner: batched"):
        TrainingConfig(runner="stock", learner_batch="bulk")


@pytest.mark.ray
def test_ppo_trains_on_rollout_batches_from_a_remote_runner() -> None:
    """MAPushPPO with the bulk batch on a real local Ray: a remote runner's RolloutBatch reaches the learner."""
    import ray

    from mapush_rllib.algorithm import MAPushPPO

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        config = build_ppo_config(
            TrainingConfig(num_env_runners=1, rollout_steps=10, num_epochs=1, num_minibatches=2, learner_batch="bulk"),
            SimConfig(num_envs=NUM_ENVS, num_threads=1), TaskConfig(episode_length_s=0.1), RewardConfig(), seed=3,
        ).env_runners(num_cpus_per_env_runner=0.5).resources(num_cpus_for_main_process=0.5).learners(
            num_cpus_per_learner=0.5
        )
        algo = config.build_algo()
        assert isinstance(algo, MAPushPPO)
        try:
            learner = algo.learner_group._learner
            assert isinstance(learner, MAPushPPOLearner)
            before = {k: v.clone() for k, v in learner.module["policy_0"].state_dict().items()}
            for _ in range(2):
                result = algo.train()
            after = learner.module["policy_0"].state_dict()
            assert any(not torch.equal(before[k], after[k]) for k in before)
            assert result["env_runners"]["num_env_steps_sampled"] == 10 * NUM_ENVS
            assert result["env_runners"]["mapush"]["window_episodes"] >= NUM_ENVS  # 5-step episodes ended
            for module_id in ("policy_0", "policy_1"):
                # rows trained per iteration: one epoch over the steps plus one bootstrap row per chunk
                assert result["learners"][module_id]["num_module_steps_trained"] >= 10 * NUM_ENVS
                assert np.isfinite(result["learners"][module_id]["total_loss"])
        finally:
            algo.stop()
    finally:
        ray.shutdown()


class HostWaits(TorchFunctionMode):
    """Records the torch calls that make the host wait for the GPU: reading a value back (`item`, `cpu`, ...),
    `nonzero`, and indexing with a boolean tensor (a `nonzero` inside)."""

    READS = {"item", "cpu", "tolist", "numpy", "nonzero", "__bool__", "__float__", "__int__"}

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = getattr(func, "__name__", str(func))
        index = args[1] if name == "__getitem__" and len(args) > 1 else None
        if name in self.READS or (isinstance(index, torch.Tensor) and index.dtype == torch.bool):
            # torch's Adam keeps its step counters on the host (not `capturable`): reading them waits for nothing.
            if not any("torch/optim/" in frame.filename for frame in traceback.extract_stack()):
                self.calls.append(name)
        return func(*args, **(kwargs or {}))


def loss_and_gradients(learner, loss_of, module_id: str, columns: dict) -> tuple[torch.Tensor, list, list[str]]:
    """(loss, its gradients, the host waits of the loss computation)."""
    module = learner.module[module_id]
    fwd_out = module.forward_train(columns)
    with HostWaits() as waits:
        loss = loss_of(learner, module_id=module_id, config=learner.config.get_config_for_module(module_id),
                       batch=columns, fwd_out=fwd_out)
    return loss.detach(), torch.autograd.grad(loss, [p for p in module.parameters() if p.requires_grad]), waits.calls


def test_loss_and_gradients_are_rllibs_without_boolean_indexing() -> None:
    """The bulk learner's PPO loss takes its masked means over zeroed rows (no `nonzero`, so no host sync on a
    GPU): the loss and its gradients equal RLlib's to float rounding, on a batch with bootstrap rows (mask off),
    and a non-finite value in a masked-off row changes nothing."""
    episodes_runner, bulk_runner, config = make_pair(TASKS["mixed-ends"], entropy_coeff=0.01)
    learner = config.build_learner(spaces=episodes_runner.get_spaces())
    learner.module.set_state(episodes_runner.module.get_state())
    _, rollouts = sample_both(episodes_runner, bulk_runner, seed=4)
    for module_id, batch in bulk_batch(learner, rollouts).items():
        columns = dict(batch)
        mask = columns[Columns.LOSS_MASK]
        assert 0 < mask.sum() < len(mask), "real and bootstrap rows"
        ours, our_gradients, our_waits = loss_and_gradients(learner, MAPushPPOLearner.compute_loss_for_module,
                                                            module_id, columns)
        rllibs, rllib_gradients, rllib_waits = loss_and_gradients(learner, PPOTorchLearner.compute_loss_for_module,
                                                                  module_id, columns)
        assert our_waits == [] and "__getitem__" in rllib_waits, (our_waits, rllib_waits)
        torch.testing.assert_close(ours, rllibs)
        for a, b in zip(our_gradients, rllib_gradients, strict=True):
            torch.testing.assert_close(a, b)
        assert any(g.abs().sum() > 0 for g in our_gradients)
        columns[Postprocessing.ADVANTAGES] = torch.where(mask, columns[Postprocessing.ADVANTAGES], torch.nan)
        poisoned, _, _ = loss_and_gradients(learner, MAPushPPOLearner.compute_loss_for_module, module_id, columns)
        assert torch.equal(poisoned, ours)


def test_no_host_wait_per_minibatch() -> None:
    """A whole bulk update (batch, shuffles, forward, loss, gradients, optimizer steps, metrics) makes the host wait
    as often with 8 minibatches as with 2: none of its waits is inside the epoch loop."""
    episodes_runner, bulk_runner, config = make_pair(TASKS["mixed-ends"], num_epochs=4, num_minibatches=2)
    _, rollouts = sample_both(episodes_runner, bulk_runner, seed=6)
    waits = {}
    for num_epochs in (1, 4):
        learner = config.build_learner(spaces=episodes_runner.get_spaces())
        learner.module.set_state(episodes_runner.module.get_state())
        with HostWaits() as recorded:
            learner.update(episodes=rollouts, timesteps={"num_env_steps_sampled_lifetime": ROLLOUT * NUM_ENVS},
                           num_epochs=num_epochs, minibatch_size=config.minibatch_size, shuffle_batch_per_epoch=True)
        waits[num_epochs] = recorded.calls
    assert len(waits[4]) == len(waits[1]), waits
