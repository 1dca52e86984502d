"""Embedded physics backend: MuJoCo on the CPU, all envs stepped by `mujoco.batch.Batch` on a thread pool.

Per-env box footprint, mass and friction are per-simulation model fields (`Batch.expand`), so the
curriculum changes them between resets without rebuilding the batch.
"""

from __future__ import annotations

import os
from typing import Any

import mujoco
import mujoco.batch
import numpy as np

from mapush_rllib.sim.backend import PhysicsBackend
from mapush_rllib.sim.config import NUM_AGENTS, PhysicsConfig
from mapush_rllib.sim.mujoco_scene import agent_centre_height_m, combined_box_friction, scene_xml

# qpos layout: box free joint (x, y, z, qw, qx, qy, qz), then (x, y, yaw) per agent.
BOX_QPOS = slice(0, 7)
BOX_QVEL_LIN = slice(0, 3)
AGENT_QPOS0 = 7
AGENT_QVEL0 = 6


class MujocoBackend(PhysicsBackend):
    """`num_envs` MuJoCo worlds of `scene_xml`, stepped in one batch call per policy step."""

    def __init__(self, num_envs: int, physics: PhysicsConfig, num_threads: int = 0) -> None:
        self.num_envs = num_envs
        self.num_agents = NUM_AGENTS
        self.physics = physics
        self.model = mujoco.MjModel.from_xml_string(scene_xml(physics))
        nthread = num_threads or os.cpu_count() or 1
        self.batch = mujoco.batch.Batch(self.model, num_envs, nthread=min(nthread, num_envs))
        self._qpos = self.batch.bind("qpos")  # (E, 13), live views into the batch's state
        self._qvel = self.batch.bind("qvel")  # (E, 12)
        self._ctrl = self.batch.bind("ctrl")  # (E, 6)
        self._sensordata = self.batch.bind("sensordata")  # (E, 6): net contact force (xyz) per agent
        box_geom = self.model.geom("box").id
        box_body = self.model.body("box").id
        self._box_geom, self._box_body = box_geom, box_body
        self._geom_size = self.batch.expand("geom_size")
        self._geom_rbound = self.batch.expand("geom_rbound")
        self._geom_aabb = self.batch.expand("geom_aabb")
        self._geom_friction = self.batch.expand("geom_friction")
        self._body_mass = self.batch.expand("body_mass")
        self._body_inertia = self.batch.expand("body_inertia")
        self.batch.reset()

    def set_box(self, env_ids: Any, size_m: Any, mass_kg: Any, friction: Any) -> None:
        ids = np.asarray(env_ids, dtype=np.int64)
        half = np.asarray(size_m, dtype=np.float64).reshape(-1, 3) / 2
        mass = np.asarray(mass_kg, dtype=np.float64).reshape(-1)
        g, b = self._box_geom, self._box_body
        self._geom_size[ids, g] = half
        self._geom_rbound[ids, g] = np.linalg.norm(half, axis=1)
        self._geom_aabb[ids, g, :3] = 0.0
        self._geom_aabb[ids, g, 3:] = half
        self._geom_friction[ids, g, 0] = combined_box_friction(self.physics, np.asarray(friction).reshape(-1))
        self._body_mass[ids, b] = mass
        # Solid cuboid with half-extents (a, b, c): I_x = m (b^2 + c^2) / 3, and so on.
        sq = half**2
        self._body_inertia[ids, b] = mass[:, None] / 3 * np.stack(
            [sq[:, 1] + sq[:, 2], sq[:, 0] + sq[:, 2], sq[:, 0] + sq[:, 1]], axis=1
        )
        self.batch.set_const(ids)

    def reset_envs(self, env_ids: Any, box_pose: Any, agent_pose: Any, agent_vel: Any) -> None:
        ids = np.asarray(env_ids, dtype=np.int64)
        if ids.size == 0:
            return
        box_pose = np.asarray(box_pose, dtype=np.float64)
        agent_pose = np.asarray(agent_pose, dtype=np.float64)
        agent_vel = np.asarray(agent_vel, dtype=np.float64)
        self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)  # clears velocities and warm starts
        half_yaw = box_pose[:, 3] / 2
        qpos = np.zeros((ids.size, self.model.nq))
        qpos[:, 0:3] = box_pose[:, :3]
        qpos[:, 3] = np.cos(half_yaw)
        qpos[:, 6] = np.sin(half_yaw)
        qpos[:, AGENT_QPOS0:] = agent_pose.reshape(ids.size, -1)
        qvel = np.zeros((ids.size, self.model.nv))
        qvel[:, AGENT_QVEL0:] = agent_vel.reshape(ids.size, -1)
        self._qpos[ids] = qpos
        self._qvel[ids] = qvel

    def step(self, commands: Any) -> None:
        self._ctrl[:] = np.asarray(commands, dtype=np.float64).reshape(self.num_envs, -1)
        self.batch.step(nstep=self.physics.substeps)
        if self.batch_failed():
            raise FloatingPointError(f"MuJoCo simulation failed: {self.batch.error(self.batch_failed_env())}")

    def batch_failed(self) -> bool:
        return not np.isfinite(self._qpos).all()

    def batch_failed_env(self) -> int:
        return int(np.flatnonzero(~np.isfinite(self._qpos).all(axis=1))[0])

    def state(self) -> dict[str, np.ndarray]:
        qpos, qvel = self._qpos, self._qvel
        agents_q = qpos[:, AGENT_QPOS0:].reshape(self.num_envs, NUM_AGENTS, 3)
        agents_v = qvel[:, AGENT_QVEL0:].reshape(self.num_envs, NUM_AGENTS, 3)
        z_agent = agent_centre_height_m(self.physics)
        agent_pos = np.concatenate([agents_q[:, :, :2], np.full((self.num_envs, NUM_AGENTS, 1), z_agent)], axis=2)
        forces = self._sensordata.reshape(self.num_envs, NUM_AGENTS, 3)
        return {
            "box_pos": qpos[:, 0:3],
            "box_quat": qpos[:, 3:7],
            "box_lin_vel": qvel[:, BOX_QVEL_LIN],
            "agent_pos": agent_pos,
            "agent_yaw": agents_q[:, :, 2],
            "agent_lin_vel": agents_v[:, :, :2],
            "agent_yaw_rate": agents_v[:, :, 2],
            "agent_box_force": np.linalg.norm(forces, axis=2),
        }
