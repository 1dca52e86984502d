"""The contract between the task layer and a physics backend.

A backend simulates N envs x 2 agents and nothing else: it knows no rewards, targets, episodes or
observations. Everything MAPush-specific (reset distributions, observations, termination, rewards,
metrics) lives in `mapush_rllib.task.vec_env`, computed from the state a backend reports, so it is the
same on every backend (embedded MuJoCo, MuJoCo Warp on a GPU, Isaac Gym behind the simulator server).

Arrays are numpy on CPU backends and torch tensors on GPU backends; the task layer reads either with
`torch.as_tensor`. This module must stay valid Python 3.8 and import nothing but the standard library,
because the simulator server (which hosts backends in Isaac Gym's Python 3.8) shares it.
"""

from typing import Any, Dict, Sequence

#: Keys and shapes of `PhysicsBackend.state()`. E = num_envs, A = num_agents.
STATE_FIELDS = {
    "box_pos": ("E", 3),  # box centre, world frame [m]; the env origin is the box's reset position
    "box_quat": ("E", 4),  # box orientation, (w, x, y, z)
    "box_lin_vel": ("E", 3),  # box linear velocity, world frame [m/s]
    "agent_pos": ("E", "A", 3),  # agent base position, world frame [m]
    "agent_yaw": ("E", "A"),  # agent heading [rad], any branch
    "agent_lin_vel": ("E", "A", 2),  # agent planar velocity, world frame [m/s]
    "agent_yaw_rate": ("E", "A"),  # [rad/s]
    "agent_box_force": ("E", "A"),  # magnitude of the net contact force between agent and box [N]
}

#: Fields a backend may add to `state()` when its bodies can do what these describe.
OPTIONAL_STATE_FIELDS = {
    # 1.0 where a legged robot has fallen or jumped (MAPush's roll / pitch / z-wave exceptions, spec §1.4);
    # the task layer ends such an episode as an exception. Backends whose agents cannot fall leave it out.
    "agent_fallen": ("E", "A"),
}


class PhysicsBackend:
    """N parallel worlds, each a box and `num_agents` agents on a flat floor.

    Subclasses implement the five methods below. Commands are body-frame velocity set-points
    (vx [m/s], vy [m/s], yaw rate [rad/s]) that the backend's locomotion layer tracks for one
    policy step (MAPush: 4 physics substeps of 5 ms).
    """

    num_envs: int
    num_agents: int = 2

    def set_box(self, env_ids: Sequence[int], size_m: Any, mass_kg: Any, friction: Any) -> None:
        """Give the box of each listed env a new footprint and mass; takes effect at once.

        Args:
            env_ids: (n,) env indices.
            size_m: (n, 3) full box extents x, y, z [m].
            mass_kg: (n,) box mass [kg].
            friction: (n,) box friction coefficient against the floor.
        """
        raise NotImplementedError

    def reset_envs(self, env_ids: Sequence[int], box_pose: Any, agent_pose: Any, agent_vel: Any) -> None:
        """Teleport the listed envs to a new initial state with the box at rest.

        Args:
            env_ids: (n,) env indices.
            box_pose: (n, 4) box x, y, z [m] and yaw [rad].
            agent_pose: (n, A, 3) agent x, y [m] and yaw [rad].
            agent_vel: (n, A, 3) agent world-frame vx, vy [m/s] and yaw rate [rad/s].
        """
        raise NotImplementedError

    def step(self, commands: Any) -> None:
        """Advance every env by one policy step. commands: (E, A, 3) body-frame (vx, vy, yaw rate)."""
        raise NotImplementedError

    def state(self) -> Dict[str, Any]:
        """The current state of every env, keyed as in STATE_FIELDS."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the simulator's resources."""
