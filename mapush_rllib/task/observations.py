"""Planar geometry and the MAPush observations, batched over envs and agents.

Shapes use E = num_envs, A = num_agents.
"""

from __future__ import annotations

import functools
import math

import torch

OBS_DIM = 8
GLOBAL_STATE_DIM = 17
TWO_PI = 2 * math.pi


def yaw_from_quat(quat: torch.Tensor) -> torch.Tensor:
    """Heading of (w, x, y, z) quaternions, (..., 4) -> (...,), in (-pi, pi]."""
    w, x, y, z = quat.unbind(-1)
    return torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def tilt_from_quat(quat: torch.Tensor) -> torch.Tensor:
    """Angle between the body's z axis and the world's z axis, (..., 4) -> (...,) [rad]."""
    w, x, y, z = quat.unbind(-1)
    cos_tilt = 1 - 2 * (x * x + y * y)
    return torch.acos(cos_tilt.clamp(-1.0, 1.0))


def wrap_to_pi(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, TWO_PI) - math.pi


def rotate(vec: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate planar vectors (..., 2) by angle (...,) counter-clockwise."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y = vec.unbind(-1)
    return torch.stack([c * x - s * y, s * x + c * y], dim=-1)


def observations(
    target_xy: torch.Tensor,
    box_xy: torch.Tensor,
    box_yaw: torch.Tensor,
    agent_xy: torch.Tensor,
    agent_yaw: torch.Tensor,
) -> torch.Tensor:
    """The 8-D egocentric observation of every agent, exactly in MAPush's layout (spec §2.1).

    Args:
        target_xy: (E, 2). box_xy: (E, 2). box_yaw: (E,).
        agent_xy: (E, A, 2). agent_yaw: (E, A).

    Returns:
        (E, A, 8): target xy (2), box xy (2), box relative yaw in [0, 2pi) (1), other agent xy (2),
        other agent relative yaw in [0, 2pi) (1); positions relative to the agent and rotated into its frame.
        The other agent of agent i is (i - 1) mod A, as MAPush's torch.roll.
    """
    to_frame = -agent_yaw
    other_xy = torch.roll(agent_xy, shifts=1, dims=1)
    other_yaw = torch.roll(agent_yaw, shifts=1, dims=1)
    obs = torch.cat(
        [
            rotate(target_xy[:, None, :] - agent_xy, to_frame),  # 2
            rotate(box_xy[:, None, :] - agent_xy, to_frame),  # 2
            torch.remainder(box_yaw[:, None] - agent_yaw, TWO_PI)[..., None],  # 1
            rotate(other_xy - agent_xy, to_frame),  # 2
            torch.remainder(other_yaw - agent_yaw, TWO_PI)[..., None],  # 1
        ],
        dim=-1,
    )
    # MAPush zeroes non-finite entries (spec §2.1); such an env also ends with an exception.
    return torch.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)


def global_state(
    target_xy: torch.Tensor,
    box_xy: torch.Tensor,
    box_yaw: torch.Tensor,
    agent_xy: torch.Tensor,
    agent_yaw: torch.Tensor,
    agent_lin_vel: torch.Tensor,
    agent_yaw_rate: torch.Tensor,
) -> torch.Tensor:
    """The 17-D global state for centralised critics (the HARL port's "EP" state, spec §4.4).

    Returns:
        (E, 17): box x, y, yaw (3); target x, y (2); per agent x, y, yaw, body-frame vx, vy, yaw rate (6 each).
        Positions are relative to the env origin (the box's reset position); yaws in [0, 2pi).
    """
    body_vel = rotate(agent_lin_vel, -agent_yaw)
    per_agent = torch.cat(
        [agent_xy, torch.remainder(agent_yaw, TWO_PI)[..., None], body_vel, agent_yaw_rate[..., None]], dim=-1
    )
    state = torch.cat(
        [box_xy, torch.remainder(box_yaw, TWO_PI)[:, None], target_xy, per_agent.flatten(1)],
        dim=-1,
    )
    return torch.nan_to_num(state, nan=0.0, posinf=0.0, neginf=0.0)


@functools.cache
def _corner_signs(device: torch.device) -> torch.Tensor:
    """(4, 2) corner signs of a square, counter-clockwise; made once per device, because copying a constant
    from the host to a GPU waits for all queued GPU work (a host sync in every step)."""
    return torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=device)


def box_polygon_closest_edge_normal(point_in_box: torch.Tensor, half_size: torch.Tensor) -> torch.Tensor:
    """Inward unit normal of the square-box edge closest to each point, in the box frame.

    MAPush's `calc_normal_vector_for_obc_reward`: vertices counter-clockwise, normal (-e_y, e_x) of the
    edge direction e, closest edge by point-to-segment distance.

    Args:
        point_in_box: (E, A, 2) points in the box frame. half_size: (E,) half side of the square box.

    Returns:
        (E, A, 2) unit normals.
    """
    h = half_size[:, None, None]
    start = _corner_signs(point_in_box.device)[None, None] * h[..., None]  # (E, 1, 4, 2)
    end = torch.roll(start, shifts=-1, dims=2)
    edge = end - start
    rel = point_in_box[:, :, None, :] - start  # (E, A, 4, 2)
    t = ((rel * edge).sum(-1) / (edge * edge).sum(-1)).clamp(0.0, 1.0)
    dist = (rel - t[..., None] * edge).norm(dim=-1)
    closest = dist.argmin(dim=-1)  # (E, A)
    direction = edge / edge.norm(dim=-1, keepdim=True)
    normals = torch.stack([-direction[..., 1], direction[..., 0]], dim=-1)  # (E, 1, 4, 2)
    normals = normals.expand(point_in_box.shape[0], point_in_box.shape[1], 4, 2)
    return torch.gather(normals, 2, closest[..., None, None].expand(-1, -1, 1, 2)).squeeze(2)


def distance_outside_box(point_in_box: torch.Tensor, half_size: torch.Tensor) -> torch.Tensor:
    """Distance from points (E, A, 2) in the box frame to the square box (0 inside), (E, A)."""
    excess = (point_in_box.abs() - half_size[:, None, None]).clamp(min=0.0)
    return excess.norm(dim=-1)
