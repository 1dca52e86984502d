"""Hand-written policies: a scripted pushing controller (proof the task is solvable here) and a random floor.

Both act on the egocentric 8-D observation like a learned policy, batched over (E, A).
"""

from __future__ import annotations

import math

import torch

from mapush_rllib.task.observations import rotate, wrap_to_pi
from mapush_rllib.task.vec_env import ACTION_SCALE

MAX_SPEED = 0.5  # m/s, the command limit
AGENT_HALF_LENGTH_M = 0.3
SLOT_OFFSET_M = 0.22  # lateral offset of each pusher from the push line
GAIN_POSITION = 2.0  # (m/s) per m of position error
GAIN_YAW = 2.0  # (rad/s) per rad of heading error


class ScriptedPushPolicy:
    """Both agents go behind the box (relative to the target), side by side, face the target and push.

    In each agent's own frame (agent at the origin facing +x), with u the box-to-target direction and
    p = (-u_y, u_x) its left normal, the agent's position relative to the box is (s, l) = (-b.u, -b.p).
    An agent not yet behind the box first steps sideways clear of it, then walks back past it, then
    takes its slot (left or right of the push line, by the side it is on) and pushes along u, steering
    its slot back onto the line as the box turns.

    Two handicaps make teams of known quality for tests and benchmarks:
        walk_away: agents that walk straight away from the box instead (a freeloader).
        max_target_distance_m: both agents stand still while the box is farther than this from the target,
            so every episode that starts farther fails by time-out and the others succeed early.
    """

    def __init__(self, *, walk_away: tuple[int, ...] = (), max_target_distance_m: float | None = None) -> None:
        self.walk_away = walk_away
        self.max_target_distance_m = max_target_distance_m

    def __call__(self, obs: torch.Tensor, box_size_m: torch.Tensor) -> torch.Tensor:
        """obs (E, A, 8), box_size_m (E,) -> actions (E, A, 3) in [-1, 1]."""
        actions = self._push(obs, box_size_m)
        if self.walk_away:
            box = obs[..., 2:4]
            away = -MAX_SPEED * box / box.norm(dim=-1, keepdim=True).clamp(min=1e-6) / ACTION_SCALE
            walking = torch.cat([away, torch.zeros_like(away[..., :1])], dim=-1).clamp(-1.0, 1.0)
            actions[:, list(self.walk_away)] = walking[:, list(self.walk_away)]
        if self.max_target_distance_m is not None:
            too_far = (obs[:, 0, 0:2] - obs[:, 0, 2:4]).norm(dim=-1) > self.max_target_distance_m  # (E,)
            actions = torch.where(too_far[:, None, None], 0.0, actions)
        return actions

    def _push(self, obs: torch.Tensor, box_size_m: torch.Tensor) -> torch.Tensor:
        target, box, box_rel_yaw = obs[..., 0:2], obs[..., 2:4], obs[..., 4]
        to_target = target - box
        u = to_target / to_target.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        left = torch.stack([-u[..., 1], u[..., 0]], dim=-1)
        s = -(box * u).sum(-1)
        lateral = -(box * left).sum(-1)
        heading_u = torch.atan2(u[..., 1], u[..., 0])

        half = box_size_m[:, None] / 2
        rel = box_rel_yaw - heading_u  # box axes against the push direction
        extent = half * (torch.cos(rel).abs() + torch.sin(rel).abs())  # box support along -u
        contact_s = -(extent + AGENT_HALF_LENGTH_M)
        clear_lateral = extent + math.hypot(0.3, 0.15) + 0.2

        # Slots: the agent further to the left of the push line takes the left slot.
        other = obs[..., 5:7]
        lateral_other = -((box - other) * left).sum(-1)
        slot = torch.where(lateral >= lateral_other, SLOT_OFFSET_M, -SLOT_OFFSET_M)

        behind = s < contact_s + 0.15
        beside = lateral.abs() >= clear_lateral - 0.05
        goal_s = torch.where(behind, contact_s - 0.05, torch.where(beside, contact_s - 0.4, s))
        goal_l = torch.where(behind, slot, torch.where(beside, lateral, torch.sign(lateral + 1e-6) * clear_lateral))
        aligned = behind & ((lateral - slot).abs() < 0.12) & (wrap_to_pi(heading_u).abs() < 0.3)

        goal = box + u * goal_s[..., None] + left * goal_l[..., None]  # agent frame
        velocity = GAIN_POSITION * goal
        push = MAX_SPEED * u + GAIN_POSITION * (slot - lateral)[..., None] * left
        velocity = torch.where(aligned[..., None], push, velocity)
        speed = velocity.norm(dim=-1, keepdim=True)
        velocity = velocity * (MAX_SPEED / speed.clamp(min=MAX_SPEED))
        yaw_rate = (GAIN_YAW * wrap_to_pi(heading_u)).clamp(-MAX_SPEED, MAX_SPEED)
        command = torch.cat([velocity, yaw_rate[..., None]], dim=-1)
        return (command / ACTION_SCALE).clamp(-1.0, 1.0)


class RandomPolicy:
    """Uniform random actions in [-1, 1]: the floor any learned policy must beat."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, obs: torch.Tensor, box_size_m: torch.Tensor) -> torch.Tensor:
        shape = (*obs.shape[:-1], 3)
        return (torch.rand(shape, generator=self.generator) * 2 - 1).to(obs.device)


__all__ = ["ScriptedPushPolicy", "RandomPolicy", "rotate"]
