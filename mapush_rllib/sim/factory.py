"""`make_backend`: the physics engine that `simulator.backend` names, built for a batch of envs.

The engines are imported here, on demand, so a machine needs only the engine it runs (MuJoCo Warp and Isaac Gym
are optional), and the engines themselves import only the contract (`mapush_rllib.sim.backend`).
"""

from __future__ import annotations

from mapush_rllib.sim.backend import PhysicsBackend
from mapush_rllib.sim.config import SimConfig


def make_backend(sim: SimConfig, num_envs: int) -> PhysicsBackend:
    """The physics backend that `sim.backend` names, for `num_envs` envs."""
    if sim.backend == "mujoco":
        from mapush_rllib.sim.mujoco_backend import MujocoBackend

        return MujocoBackend(num_envs, sim.physics, num_threads=sim.num_threads)
    if sim.backend == "mujoco_warp":
        from mapush_rllib.sim.warp_backend import WarpBackend  # type: ignore[import-not-found]

        return WarpBackend(num_envs, sim.physics, device=sim.device)
    if sim.backend in ("server", "isaacgym"):
        from mapush_rllib.sim.client import connect_backend  # type: ignore[import-not-found]

        return connect_backend(sim, num_envs)
    raise ValueError(f"simulator.backend: unknown backend {sim.backend!r}")
