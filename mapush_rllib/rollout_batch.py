"""The PPO training batch built in bulk from the batched runner's rollout tensors (`training.learner_batch: bulk`).

RLlib's PPO turns episode chunks into its training batch with a learner connector pipeline that does Python
work per chunk (adding the bootstrap step, collecting columns, GAE per module). With 10^4 envs per runner that
costs seconds per iteration (`benchmarks/train_throughput.py --profile`). Here the batched runner hands its
(T, N, A, ...) rollout tensors to the learner as one `RolloutBatch` instead of N episode chunks, and
`learner_batch` builds the same training batch with a few tensor operations on the learner's device:

- the same rows in the same order: per module, one block per episode chunk in the runner's order (episodes that
  ended, by end step then env; then the ongoing ones, by env), within it per agent of the module the chunk's
  steps plus the bootstrap step RLlib appends (`AddOneTsToEpisodesAndTruncate`: the last observation again,
  action and model outputs repeated, reward 0, loss mask off); agents and modules in the order RLlib visits
  them (`_agent_order`), which is also the order the minibatch iterator shuffles the modules in;
- the same columns: obs, actions, rewards, terminateds, truncateds (the last real step of every chunk that did
  not terminate), loss_mask, the runner's model outputs, weights_seq_no, and the GAE advantages and value
  targets, with the values from the same `compute_values` call on the same rows and GAE in the same float64
  arithmetic as RLlib's `compute_value_targets`, including what it computes at the bootstrap rows (which flows
  into the advantage standardisation);
- the same advantage standardisation, with numpy's float32 reductions on the host (one round trip of the
  advantages per module), so the batch is identical bit for bit;
- the same shuffle per epoch (`ShuffledOnDevice`: numpy's permutation, as RLlib draws it), copied to the device
  once rather than once per column.

`tests/rllib/test_rollout_batch.py` checks this against the connector pipeline on the same rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

#: `learner_config_dict` key that makes the batched runner return `RolloutBatch`es instead of episodes.
BULK_LEARNER_BATCH = "mapush_bulk_learner_batch"


@dataclass(eq=False)
class RolloutBatch:
    """T policy steps of N envs x A agents, as the batched runner recorded them (tensors on its device)."""

    obs: torch.Tensor  # (T, N, A, D) observation each action was taken on
    last_obs: torch.Tensor  # (T, N, A, D) observation after each step, before any reset
    actions: torch.Tensor  # (T, N, A, act) as sampled (before clipping for the env)
    rewards: torch.Tensor  # (T, N, A) float32
    extras: dict[str, torch.Tensor]  # (T, N, A, ...) model outputs (action logp, distribution inputs)
    terminated: torch.Tensor  # (T, N) bool
    truncated: torch.Tensor  # (T, N) bool
    agent_ids: tuple[str, ...]  # (A,) the agents' ids
    module_agents: dict[str, list[int]]  # module id -> indices of the agents it acts for, in agent order
    weights_seq_no: int | None  # of the weights that acted; None for random actions (no model outputs)

    def env_steps(self) -> int:
        return self.rewards.shape[0] * self.rewards.shape[1]

    def agent_steps(self) -> int:
        return self.rewards.numel()

    def __len__(self) -> int:
        return self.env_steps()

    def to(self, device: torch.device) -> RolloutBatch:
        move = lambda x: x.to(device)  # noqa: E731
        return RolloutBatch(
            obs=move(self.obs), last_obs=move(self.last_obs), actions=move(self.actions),
            rewards=move(self.rewards), extras={key: move(value) for key, value in self.extras.items()},
            terminated=move(self.terminated), truncated=move(self.truncated), agent_ids=self.agent_ids,
            module_agents=self.module_agents, weights_seq_no=self.weights_seq_no,
        )


@dataclass
class ChunkLayout:
    """Where each step of a rollout falls in RLlib's episode-chunk order. C = number of chunks."""

    is_end: torch.Tensor  # (T, N) bool: the last step of a chunk (a done step, or the rollout's last step)
    start: torch.Tensor  # (T, N) long: first step of the chunk holding step (t, env)
    rank: torch.Tensor  # (T, N) long: position of that chunk in the episode order
    chunk_length: torch.Tensor  # (C,) long, in episode order
    num_chunks: int


def chunk_layout(done: torch.Tensor) -> ChunkLayout:
    """Cut each env's steps at its done steps, and order the chunks as the runner returns episodes.

    Args:
        done: (T, N) bool, terminated or truncated.
    """
    T, N = done.shape
    device = done.device
    t = torch.arange(T, device=device)[:, None].expand(T, N)
    env = torch.arange(N, device=device)[None, :].expand(T, N)
    is_end = done.clone()
    is_end[-1] = True
    end = torch.where(is_end, t, T).flip(0).cummin(0).values.flip(0)  # (T, N) last step of the chunk
    last_done = torch.where(done, t, -1).cummax(0).values  # last done step <= t
    start = torch.cat([torch.zeros_like(last_done[:1]), last_done[:-1] + 1])
    # Ended chunks by (end step, env), then ongoing chunks by env: a key per chunk, ranked by counting.
    key = torch.where(done, t, T) * N + env
    occupied = torch.zeros((T + 1) * N, dtype=torch.long, device=device)
    occupied.index_add_(0, key.flatten(), is_end.flatten().long())
    rank_of_key = occupied.cumsum(0) - 1
    rank_at_end = rank_of_key[key]
    num_chunks = int(occupied.sum())
    chunk_length = torch.zeros(num_chunks, dtype=torch.long, device=device)
    chunk_length[rank_at_end[is_end]] = (t - start + 1)[is_end]
    return ChunkLayout(
        is_end=is_end, start=start, rank=rank_at_end.gather(0, end), chunk_length=chunk_length, num_chunks=num_chunks
    )


@dataclass
class _ModuleRows:
    """One rollout's rows in a module's batch: destinations of the real and of the bootstrap steps."""

    real: torch.Tensor  # (T, N, k) row of step t of env i, agent j of the module
    bootstrap: torch.Tensor  # (T, N, k) row of the bootstrap step of the chunk ending at (t, i); valid where is_end
    num_rows: int


def _module_rows(layout: ChunkLayout, num_agents: int, first_row: int) -> _ModuleRows:
    """Rows of a module acting for `num_agents` agents: per chunk, per agent, the steps then the bootstrap step."""
    length = layout.chunk_length  # (C,)
    block = (length + 1) * num_agents
    offset = first_row + torch.cumsum(block, 0) - block  # (C,) first row of each chunk's block
    T, N = layout.start.shape
    t = torch.arange(T, device=length.device)[:, None, None]
    agent = torch.arange(num_agents, device=length.device)[None, None, :]
    chunk_offset, chunk_length = offset[layout.rank][..., None], length[layout.rank][..., None]  # (T, N, 1)
    per_agent = agent * (chunk_length + 1)
    real = chunk_offset + per_agent + (t - layout.start[..., None])
    bootstrap = chunk_offset + per_agent + chunk_length
    return _ModuleRows(real=real, bootstrap=bootstrap, num_rows=num_agents * (T * N + layout.num_chunks))


def _scatter_rows(out: torch.Tensor, rows: _ModuleRows, is_end: torch.Tensor, real: torch.Tensor,
                  bootstrap: torch.Tensor) -> None:
    """Write (T, N, k, ...) values of the real steps and of the bootstrap steps (taken where is_end) into `out`."""
    feature = real.shape[3:]
    out[rows.real.flatten()] = real.reshape(-1, *feature)
    out[rows.bootstrap[is_end].flatten()] = bootstrap[is_end].reshape(-1, *feature)


def learner_batch(
    module: torch.nn.Module, rollouts: list[RolloutBatch], *, gamma: float, lambda_: float, device: torch.device
) -> MultiAgentBatch:
    """PPO's training batch of `rollouts`, as RLlib's learner connectors build it from their episode chunks.

    Args:
        module: the learner's MultiRLModule (its critics give the values).
        rollouts: from one or several runners, in the order RLlib would concatenate their episodes.
        gamma, lambda_: discount and GAE lambda.
        device: the learner's device; the batch's tensors live there.
    """
    rollouts = [rollout.to(device) for rollout in rollouts]
    layouts = [chunk_layout(r.terminated | r.truncated) for r in rollouts]
    module_ids = [m for m in _module_order(rollouts[0]) if m in module.keys()]
    batch = {}
    for module_id in module_ids:
        with torch.no_grad():
            batch[module_id] = _module_batch(module[module_id], module_id, rollouts, layouts, gamma, lambda_)
    return MultiAgentBatch(
        {module_id: ShuffledOnDevice(columns) for module_id, columns in batch.items()},
        env_steps=sum(r.env_steps() for r in rollouts),
    )


class ShuffledOnDevice(SampleBatch):
    """A module's training batch whose per-epoch shuffle indexes every column with one device tensor.

    RLlib's `SampleBatch.shuffle` indexes each column with a numpy permutation: on a GPU, one pageable
    host-to-device copy per column and epoch. The permutation is drawn the same way (numpy's global generator),
    so the minibatches, and the update, are RLlib's.
    """

    def shuffle(self) -> ShuffledOnDevice:
        device = self[Columns.LOSS_MASK].device  # every column lives on the learner's device (`learner_batch`)
        index = torch.from_numpy(np.random.permutation(self.count)).to(device)
        self.update({key: column[index] for key, column in self.items()})
        self.intercepted_values = {}  # SampleBatch's cache of converted columns, stale now
        return self


def _agent_order(rollout: RolloutBatch) -> list[int]:
    """Agent indices in the order RLlib's learner connectors visit a multi-agent episode's agents.

    They iterate `MultiAgentEpisode.agent_ids`, a Python set of the ids, so the order is that of this process's
    string hashes (it varies with PYTHONHASHSEED). It decides the order of the agents within a chunk's rows and
    the order of the modules in the batch, which is the order in which the minibatch iterator shuffles them.
    """
    return [rollout.agent_ids.index(aid) for aid in set(rollout.agent_ids)]


def _module_order(rollout: RolloutBatch) -> list[str]:
    """Module ids in the order of their first agent in `_agent_order`."""
    module_of = {index: module_id for module_id, agents in rollout.module_agents.items() for index in agents}
    return list(dict.fromkeys(module_of[index] for index in _agent_order(rollout)))


def _block_agents(rollout: RolloutBatch, module_id: str) -> list[int]:
    """The agents of a module in the order RLlib's connectors put their rows in a chunk's block."""
    agents = rollout.module_agents[module_id]
    return [index for index in _agent_order(rollout) if index in agents]


def _module_batch(
    module: torch.nn.Module, module_id: str, rollouts: list[RolloutBatch], layouts: list[ChunkLayout],
    gamma: float, lambda_: float,
) -> dict[str, torch.Tensor]:
    device = rollouts[0].rewards.device
    placed: list[_ModuleRows] = []
    first_row = 0
    for rollout, layout in zip(rollouts, layouts, strict=True):
        placed.append(_module_rows(layout, len(rollout.module_agents[module_id]), first_row))
        first_row += placed[-1].num_rows
    num_rows = first_row

    def column(feature: tuple[int, ...], dtype: torch.dtype, real, bootstrap) -> torch.Tensor:
        """One column over all rollouts. `real(rollout, layout, agents)` gives the (T, N, k, *feature) values of
        the real steps, `bootstrap(...)` those of the bootstrap step of the chunk ending at each (t, env)."""
        out = torch.empty((num_rows, *feature), dtype=dtype, device=device)
        for rollout, layout, rows in zip(rollouts, layouts, placed, strict=True):
            agents = _block_agents(rollout, module_id)
            _scatter_rows(out, rows, layout.is_end, real(rollout, layout, agents), bootstrap(rollout, layout, agents))
        return out

    def recorded(name: str):  # the bootstrap step repeats the chunk's last action and model outputs
        return lambda r, layout, agents: getattr(r, name)[:, :, agents]

    def extra(key: str):
        return lambda r, layout, agents: r.extras[key][:, :, agents]

    def per_step(value):  # (T, N, k) of a constant
        return lambda r, layout, agents: torch.full(r.rewards[:, :, agents].shape, value, device=device)

    def on_last_step(flag):  # (T, N, k) bool: the last real step of chunks where flag (T, N) holds
        return lambda r, layout, agents: (layout.is_end & flag(r))[..., None].expand(-1, -1, len(agents))

    first = rollouts[0]
    columns = {
        Columns.LOSS_MASK: column((), torch.bool, per_step(True), per_step(False)),
        Columns.TERMINATEDS: column((), torch.bool, on_last_step(lambda r: r.terminated), per_step(False)),
        # RLlib truncates every chunk that did not terminate (the ongoing ones too) before GAE.
        Columns.TRUNCATEDS: column((), torch.bool, on_last_step(lambda r: ~r.terminated), per_step(False)),
        Columns.OBS: column(first.obs.shape[3:], first.obs.dtype, recorded("obs"), recorded("last_obs")),
        Columns.ACTIONS: column(first.actions.shape[3:], first.actions.dtype, recorded("actions"), recorded("actions")),
        Columns.REWARDS: column((), torch.float32, recorded("rewards"), per_step(0.0)),
    }
    for key, value in first.extras.items():
        columns[key] = column(value.shape[3:], value.dtype, extra(key), extra(key))
    if first.weights_seq_no is not None:
        seq_no = lambda r, layout, agents: torch.full(  # noqa: E731
            r.rewards[:, :, agents].shape, r.weights_seq_no, dtype=torch.long, device=device
        )
        columns[WEIGHTS_SEQ_NO] = column((), torch.long, seq_no, seq_no)

    values = module.compute_values(columns)  # (R,) as RLlib's GAE connector calls it: on the whole module batch
    value_targets = _gae(values, rollouts, layouts, placed, module_id, gamma, lambda_) + values
    # RLlib standardises the advantages with numpy's float32 reductions; the same expression on the same array
    # (one host round trip of R floats per module and iteration) keeps the batch bit for bit identical.
    advantages = (value_targets - values).cpu().numpy()
    advantages = (advantages - advantages.mean()) / max(1e-4, advantages.std())
    columns[Postprocessing.ADVANTAGES] = torch.from_numpy(advantages).to(device)
    columns[Postprocessing.VALUE_TARGETS] = value_targets
    return columns


def _gae(
    values: torch.Tensor, rollouts: list[RolloutBatch], layouts: list[ChunkLayout], placed: list[_ModuleRows],
    module_id: str, gamma: float, lambda_: float,
) -> torch.Tensor:
    """(R,) float32 GAE advantages over the module's rows, computed as `compute_value_targets` does.

    RLlib scans the rows backwards in float64: td = r + gamma * (1 - terminated) * V[next row] - V, and
    A = td + gamma * lambda * propagate * A[next row], where propagate is 0 on the last real step of every
    chunk (it terminated, or it is truncated) and 1 elsewhere -- also on the bootstrap rows, whose next row is
    the first step of the next block. Real steps are scanned here along time in the (T, N, k) layout; the
    bootstrap rows follow from their next rows' values and float64 advantages.
    """
    num_rows = values.shape[0]
    device = values.device
    values64 = torch.cat([values.double(), values.new_zeros(1, dtype=torch.float64)])  # V[R] = 0, as RLlib
    advantages64 = torch.zeros(num_rows + 1, dtype=torch.float64, device=device)
    advantages = torch.empty(num_rows, dtype=torch.float32, device=device)
    gamma_lambda = gamma * lambda_
    bootstrap_rows = []
    for rollout, layout, rows in zip(rollouts, layouts, placed, strict=True):
        agents = _block_agents(rollout, module_id)
        is_end = layout.is_end[..., None]  # (T, N, 1)
        value = values[rows.real]  # (T, N, k)
        next_value = torch.where(is_end, values[rows.bootstrap.clamp(max=num_rows - 1)], value.roll(-1, dims=0))
        non_terminal = 1.0 - rollout.terminated[..., None].double()
        td = rollout.rewards[:, :, agents].double() + gamma * non_terminal * next_value.double() - value.double()
        propagate = (~is_end).double()
        running = torch.zeros_like(td[0])
        scanned = torch.empty_like(td)
        for t in reversed(range(td.shape[0])):
            running = td[t] + gamma_lambda * propagate[t] * running
            scanned[t] = running
        advantages64[rows.real.flatten()] = scanned.flatten()
        advantages[rows.real.flatten()] = scanned.flatten().float()
        bootstrap_rows.append(rows.bootstrap[layout.is_end].flatten())
    rows = torch.cat(bootstrap_rows)
    reward = torch.zeros(rows.shape, dtype=torch.float32, device=device).double()
    non_terminal = torch.ones(rows.shape, dtype=torch.float64, device=device)
    td = reward + gamma * non_terminal * values64[rows + 1] - values64[rows]
    advantages[rows] = (td + gamma_lambda * 1.0 * advantages64[rows + 1]).float()
    return advantages
