"""The seven MAPush reward terms (`go1_push_mid_wrapper.py:307-389`, spec §3), computed from simulator state,
and two of ours, `own_push` and `joint_push` (scale 0 by default, so the reward is MAPush's unless turned on).

Each term is a small pure function of `RewardInputs` returning its *unscaled* value, either shared by
the team, shape (E,), or per agent, shape (E, A). The reward of agent i is sum_k scale[i, k] * term_k,
with scales held as a live (A, K) tensor so population-based training can change them between iterations.
No term is multiplied by dt (MAPush does not either).

Credit for shared terms is explicit: in "shared" mode (MAPush) every agent receives the full team term;
in "contribution" mode the terms marked `contribution_weighted` are split by each agent's measured share
of contact force on the box (A * share_i, so the team total is unchanged and an agent that never touches
the box while its partner pushes earns none of the progress) -- the known remedy for freeloading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from mapush_rllib.task.config import AGENT_IDS, REWARD_TERMS, RewardConfig, agent_index, scale_updates
from mapush_rllib.task.observations import box_polygon_closest_edge_normal, rotate, wrap_to_pi

PUSH_SPEED_THRESHOLD = 0.1  # m/s of box speed that counts as pushing (spec §3, term 6)
# An agent's contact force that earns the whole own_push term: half the ~13 N that slides MAPush's 4 kg box
# (4 kg x g x 0.325 friction), so two robots sharing the push earn twice what one pushing alone earns.
OWN_PUSH_FULL_FORCE_N = 6.0


@dataclass
class RewardInputs:
    """Everything the terms read, for one step of E envs x A agents (pre-reset state)."""

    box_pos: torch.Tensor  # (E, 3)
    box_yaw: torch.Tensor  # (E,)
    box_lin_vel: torch.Tensor  # (E, 3)
    box_half_size: torch.Tensor  # (E,) half side of the square footprint
    target_xy: torch.Tensor  # (E, 2)
    agent_pos: torch.Tensor  # (E, A, 3)
    distance: torch.Tensor  # (E,) box-target distance now
    prev_distance: torch.Tensor  # (E,) box-target distance one step earlier
    success: torch.Tensor  # (E,) bool
    exception: torch.Tensor  # (E,) bool
    agent_box_force: torch.Tensor  # (E, A) contact force magnitude of each agent on the box [N]
    expanded_ocb: bool = False


def box_to_target_direction(x: RewardInputs) -> torch.Tensor:
    """(E, 2) unit vector from the box centre to the target."""
    to_target = x.target_xy - x.box_pos[:, :2]
    return to_target / to_target.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def reach_target(x: RewardInputs) -> torch.Tensor:
    """1 in the step the box reaches the target (shared)."""
    return x.success.float()


def exception(x: RewardInputs) -> torch.Tensor:
    """1 in the step an exception ends the episode (shared); scaled by a negative weight."""
    return x.exception.float()


def distance_to_target(x: RewardInputs) -> torch.Tensor:
    """100 * [2 (d_prev - d) - 0.01 d]: progress of the box toward the target, minus a distance cost (shared)."""
    return 100 * (2 * (x.prev_distance - x.distance) - 0.01 * x.distance)


def approach_to_box(x: RewardInputs) -> torch.Tensor:
    """-(d_i + 0.5)^2 with d_i the 3-D agent-box centre distance (per agent). The sign is MAPush's, in the term."""
    d = (x.agent_pos - x.box_pos[:, None, :]).norm(dim=-1)
    return -((d + 0.5) ** 2)


def collision(x: RewardInputs) -> torch.Tensor:
    """1 / (0.02 + d_ij / 3) for every pair, added to both agents (per agent); scaled by a negative weight."""
    diff = x.agent_pos[:, :, None, :] - x.agent_pos[:, None, :, :]  # (E, A, A, 3)
    d = diff.norm(dim=-1)
    pair = 1.0 / (0.02 + d / 3)
    pair = pair * (1 - torch.eye(d.shape[1], device=d.device))  # no self-pairs
    return pair.sum(dim=-1)


def push(x: RewardInputs) -> torch.Tensor:
    """1 while the box moves faster than 0.1 m/s in the plane (shared)."""
    return (x.box_lin_vel[:, :2].norm(dim=-1) > PUSH_SPEED_THRESHOLD).float()


def ocb(x: RewardInputs) -> torch.Tensor:
    """<u_bt, n_i>: the box-to-target direction against the inward normal of the box edge closest to agent i.

    +1 when the agent sits on the face opposite the target (behind the box), -1 on the near face (per agent).
    The expanded variant rotates u_bt by -wrap(psi_target - psi_box)/2 with psi_target = 0 (spec §3).
    """
    if x.expanded_ocb:
        to_target = x.target_xy - x.box_pos[:, :2]
        u = rotate(to_target / (to_target + 0.01).norm(dim=-1, keepdim=True), -wrap_to_pi(-x.box_yaw) / 2)
    else:
        u = box_to_target_direction(x)
    in_box = rotate(x.agent_pos[..., :2] - x.box_pos[:, None, :2], -x.box_yaw[:, None])
    normal = rotate(box_polygon_closest_edge_normal(in_box, x.box_half_size), x.box_yaw[:, None])
    return (normal * u[:, None, :]).sum(dim=-1)


def own_push(x: RewardInputs) -> torch.Tensor:
    """min(F_i / 6 N, 1) while the box moves toward the target faster than 0.1 m/s (per agent).

    Not a MAPush term. MAPush's push and progress terms are shared, so a robot that idles while its partner
    pushes a box light enough for one earns them too: the freeloading optimum of separate policies. This term
    pays each robot for its own contact force, capped low, so that two robots pushing earn more than one pushing hard.
    """
    toward = (x.box_lin_vel[:, :2] * box_to_target_direction(x)).sum(dim=-1)  # box speed toward the target
    return (x.agent_box_force / OWN_PUSH_FULL_FORCE_N).clamp(max=1.0) * (toward > PUSH_SPEED_THRESHOLD).float()[:, None]


def joint_push(x: RewardInputs) -> torch.Tensor:
    """min_i min(F_i / 6 N, 1) while the box moves toward the target faster than 0.1 m/s (shared).

    Not a MAPush term. `own_push` still pays the robot that pushes alone, so a team where one robot does it all
    keeps half the pay; this one pays nothing unless both push. At a steady push the two forces add up to the
    ~13 N of sliding friction, so the weaker robot reaching 6 N means the forces are nearly equal: the term pays
    for what the freeloading index measures (each robot's share of the contact impulse).
    """
    return own_push(x).amin(dim=-1)  # the weaker robot's own_push: the moving-to-target factor is the team's


@dataclass(frozen=True)
class RewardTerm:
    name: str
    fn: Callable[[RewardInputs], torch.Tensor]
    attribution: Literal["shared", "per_agent"]
    contribution_weighted: bool  # split by contact share in "contribution" mode


#: The term table, in `REWARD_TERMS` order. Attribution as in MAPush (spec §3); own_push and joint_push are ours.
TERMS = (
    RewardTerm("reach_target", reach_target, "shared", contribution_weighted=True),
    RewardTerm("exception", exception, "shared", contribution_weighted=False),
    RewardTerm("distance_to_target", distance_to_target, "shared", contribution_weighted=True),
    RewardTerm("approach_to_box", approach_to_box, "per_agent", contribution_weighted=False),
    RewardTerm("collision", collision, "per_agent", contribution_weighted=False),
    RewardTerm("push", push, "shared", contribution_weighted=True),
    RewardTerm("ocb", ocb, "per_agent", contribution_weighted=False),
    RewardTerm("own_push", own_push, "per_agent", contribution_weighted=False),
    RewardTerm("joint_push", joint_push, "shared", contribution_weighted=False),  # its credit is built in
)
assert tuple(t.name for t in TERMS) == REWARD_TERMS


class RewardFunction:
    """Scaled, attributed MAPush rewards for a batch; scales can be changed at any time."""

    def __init__(self, config: RewardConfig, num_agents: int, device: torch.device) -> None:
        self.config = config
        self.num_agents = num_agents
        self.scales = torch.tensor(config.scale_table(), dtype=torch.float32, device=device)  # (A, K)

    def set_scales(self, scales: dict[str, dict[str, float]] | dict[str, float] | torch.Tensor) -> None:
        """Change scales live: an (A, K) tensor, {term: value} for all agents, or {agent_id: {term: value}}."""
        if isinstance(scales, torch.Tensor):
            if scales.shape != self.scales.shape:
                raise ValueError(f"reward scales: expected shape {tuple(self.scales.shape)}, got {tuple(scales.shape)}")
            self.scales.copy_(scales)
            return
        for agent_id, term, value in scale_updates(scales):  # all checked before any is applied
            self.scales[agent_index(agent_id), REWARD_TERMS.index(term)] = value

    def scales_dict(self) -> dict[str, dict[str, float]]:
        rows = zip(AGENT_IDS, self.scales.tolist(), strict=True)
        return {agent_id: dict(zip(REWARD_TERMS, row, strict=True)) for agent_id, row in rows}

    def __call__(
        self, inputs: RewardInputs, step_share: torch.Tensor, episode_share: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards of one step.

        Args:
            inputs: the pre-reset state of the step.
            step_share: (E, A) each agent's share of this step's contact force on the box (sums to 1).
            episode_share: (E, A) the same share over the episode so far, for the terminal bonus.

        Returns:
            rewards (E, A) and the scaled value of every term, (E, A, K) in REWARD_TERMS order.
        """
        num_envs = inputs.box_pos.shape[0]
        columns = []
        for term in TERMS:
            value = term.fn(inputs)
            if term.attribution == "shared":
                value = value[:, None].expand(num_envs, self.num_agents)
                if self.config.attribution == "contribution" and term.contribution_weighted:
                    share = episode_share if term.name == "reach_target" else step_share
                    value = value * share * self.num_agents
            columns.append(value)
        terms = torch.stack(columns, dim=-1) * self.scales[None]  # (E, A, K)
        return terms.sum(dim=-1), terms
