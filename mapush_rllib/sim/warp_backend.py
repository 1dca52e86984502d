"""GPU physics backend: the same MJCF scene as `MujocoBackend`, stepped by MuJoCo Warp in thousands of worlds.

All worlds live in one `mujoco_warp` Data on one Warp device ("cuda:N", or "cpu" for tests). The task layer
talks to it in torch tensors (`array_api = "torch"`): commands are copied into the worlds' `ctrl`, and
`state()` returns torch views of the Warp arrays (zero-copy, `wp.to_torch`), so nothing crosses to the host.

The physics substeps of one policy step are captured once into a graph (`wp.ScopedCapture`) and replayed
with one launch: a CUDA graph on the GPU, a Warp "APIC" graph on the CPU (same results as the plain loop,
~20x less Python overhead). Graph replays, like every Warp call here, run on torch's current stream, so
torch and Warp work on the same tensors in order without host synchronisation.

Per-world box footprint, mass and friction: `put_model(batch_sizes=...)` gives these model fields a
leading world dimension; `set_box` writes the listed worlds through torch views. The constants MuJoCo
derives from them (`mj_setConst`: subtree mass, inverse weights, bounding volumes) are recomputed here in
closed form for the box, a free body whose inertia frame is its body frame: `mujoco_warp.set_const` would
recompute every constant of every world with ~150 launches per call, too slow to run at every reset. A
test checks these closed forms against `mujoco_warp.set_const`.

Differences from the CPU backend: MuJoCo Warp computes in float32 (MuJoCo C in float64); on Warp's CPU device
3 s of pushing end micrometres from MuJoCo C, on the GPU, whose float atomics add in any order, centimetres,
while the statistics agree (benchmarks/RESULTS.md). A world whose state turns non-finite is not an error here:
the task layer ends its episode as an exception and the reset clears it (the CPU backend raises instead; a host
check after every step would stall the GPU).
"""

from __future__ import annotations

import contextlib
from typing import Any

import mujoco
import mujoco_warp as mjw
import torch
import warp as wp

from mapush_rllib.sim.backend import PhysicsBackend
from mapush_rllib.sim.config import NUM_AGENTS, PhysicsConfig
from mapush_rllib.sim.mujoco_backend import AGENT_QPOS0, AGENT_QVEL0, BOX_QVEL_LIN
from mapush_rllib.sim.mujoco_scene import agent_centre_height_m, combined_box_friction, scene_xml

# Warp's start-up banner and a line per kernel module loaded (dozens per process) say nothing a user acts on.
wp.config.quiet = True

#: Model fields that get one value per world: the box's footprint, mass and friction, and what they imply.
PER_WORLD_FIELDS = (
    "geom_size",
    "geom_aabb",
    "geom_rbound",
    "geom_friction",
    "body_mass",
    "body_inertia",
    "body_subtreemass",
    "body_invweight0",
    "dof_invweight0",
)
CONTACTS_PER_WORLD = 32  # contact buffer, averaged over worlds; scripted pushing peaks at 10 in one world
CONSTRAINTS_PER_WORLD = 128  # hard per-world limit: up to 28 box contacts x 4 pyramidal rows + margin
#: Overflows that lose physics (contacts or constraints dropped) print a warning from the kernel. The solvers'
#: iteration limits do not: MuJoCo C does not warn about them either, and in float32 the scene's 10 line-search
#: iterations end short of the tolerance in ~7 % of world-steps (20 iterations: ~6 %, with no visible change).
WARN_OVERFLOW = int(mjw.OverflowType.ALL & ~(mjw.OverflowType.ITERATIONS | mjw.OverflowType.LS_ITERATIONS))


class WarpBackend(PhysicsBackend):
    """`num_envs` MuJoCo Warp worlds of `scene_xml` on one device, torch tensors in and out."""

    array_api = "torch"

    def __init__(
        self,
        num_envs: int,
        physics: PhysicsConfig,
        device: str | torch.device = "cuda",
        *,
        use_graph: bool = True,
        contacts_per_world: int = CONTACTS_PER_WORLD,
        constraints_per_world: int = CONSTRAINTS_PER_WORLD,
    ) -> None:
        self.num_envs = num_envs
        self.num_agents = NUM_AGENTS
        self.physics = physics
        self.device = _torch_device(device)
        self.wp_device = wp.get_device(str(self.device))
        mjm = mujoco.MjModel.from_xml_string(scene_xml(physics))
        # MuJoCo C collides boxes with its box-box routine; MuJoCo Warp sends box pairs through its general
        # convex path (GJK/EPA) unless "native CCD" is off, which selects its port of that routine instead.
        # With it, 3 s of pushing match MuJoCo C to micrometres on the CPU device (GJK/EPA: 1 cm), and the
        # physics runs 14 % faster on an H100.
        mjm.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_NATIVECCD
        self.mj_model = mjm
        self._box_geom = mjm.geom("box").id
        self._box_body = mjm.body("box").id
        first_dof = mjm.jnt_dofadr[mjm.joint("box").id]
        self._box_dofs = slice(first_dof, first_dof + 6)  # free joint: 3 translational, 3 rotational
        _check_closed_forms_apply(mjm, self._box_body)

        with wp.ScopedDevice(self.wp_device):
            self.model = mjw.put_model(mjm, batch_sizes={name: num_envs for name in PER_WORLD_FIELDS})
            self.model.opt.warn_overflow = WARN_OVERFLOW
            self.data = mjw.make_data(
                mjm, nworld=num_envs, nconmax=contacts_per_world, njmax=constraints_per_world
            )
        view = wp.to_torch  # zero-copy: these tensors alias the Warp arrays
        self._qpos = view(self.data.qpos)  # (E, 13): box x y z qw qx qy qz, then x y yaw per agent
        self._qvel = view(self.data.qvel)  # (E, 12)
        self._qacc_warmstart = view(self.data.qacc_warmstart)  # (E, 12)
        self._ctrl = view(self.data.ctrl)  # (E, 6)
        self._sensordata = view(self.data.sensordata)  # (E, 6): net agent-box contact force (xyz) per agent
        self._field = {name: view(getattr(self.model, name)) for name in PER_WORLD_FIELDS}
        self._agent_z = torch.full((num_envs, NUM_AGENTS, 1), agent_centre_height_m(physics), device=self.device)

        self._wp_streams: dict[int, wp.Stream] = {}  # torch's streams, wrapped for Warp once each
        self._graph = None
        if use_graph:
            with wp.ScopedDevice(self.wp_device), wp.ScopedCapture() as capture:
                self._substeps()
            self._graph = capture.graph

    # ------------------------------------------------------------------------------------- PhysicsBackend

    def set_box(self, env_ids: Any, size_m: Any, mass_kg: Any, friction: Any) -> None:
        ids = self._ids(env_ids)
        half = self._tensor(size_m).reshape(-1, 3) / 2
        mass = self._tensor(mass_kg).reshape(-1)
        friction = self._tensor(friction).reshape(-1)
        g, b, f = self._box_geom, self._box_body, self._field
        # Solid cuboid with half-extents (a, b, c): I_x = m (b^2 + c^2) / 3, and so on.
        sq = half**2
        inertia = mass[:, None] / 3 * torch.stack([sq[:, 1] + sq[:, 2], sq[:, 0] + sq[:, 2], sq[:, 0] + sq[:, 1]], 1)
        f["geom_size"][ids, g] = half
        f["geom_aabb"][ids, g, 0] = 0.0  # centre
        f["geom_aabb"][ids, g, 1] = half  # half-extents
        f["geom_rbound"][ids, g] = half.norm(dim=1)
        f["geom_friction"][ids, g, 0] = combined_box_friction(self.physics, friction)
        f["body_mass"][ids, b] = mass
        f["body_inertia"][ids, b] = inertia
        # What mj_setConst derives, in closed form for a free body (see the module docstring): the bodies hang
        # off the world, so only the world's subtree holds another body; the inverse weights are the means of
        # the diagonal of M^-1 over the translational and rotational dofs.
        f["body_subtreemass"][ids, b] = mass
        f["body_subtreemass"][ids, 0] = f["body_mass"][ids].sum(dim=1)
        inv_rot = (1 / inertia).mean(dim=1)
        f["body_invweight0"][ids, b] = torch.stack([1 / mass, inv_rot], dim=1)
        per_dof = torch.cat([(1 / mass)[:, None].expand(-1, 3), inv_rot[:, None].expand(-1, 3)], dim=1)
        f["dof_invweight0"][ids, self._box_dofs] = per_dof

    def reset_envs(self, env_ids: Any, box_pose: Any, agent_pose: Any, agent_vel: Any) -> None:
        ids = self._ids(env_ids)
        n = ids.shape[0]
        if n == 0:
            return
        box_pose, agent_pose, agent_vel = self._tensor(box_pose), self._tensor(agent_pose), self._tensor(agent_vel)
        half_yaw = box_pose[:, 3] / 2
        zero = torch.zeros_like(half_yaw)
        box_qpos = torch.stack([*box_pose[:, :3].unbind(1), half_yaw.cos(), zero, zero, half_yaw.sin()], dim=1)
        self._qpos[ids] = torch.cat([box_qpos, agent_pose.reshape(n, -1)], dim=1)
        qvel = torch.zeros(n, self._qvel.shape[1], device=self.device)
        qvel[:, AGENT_QVEL0:] = agent_vel.reshape(n, -1)
        self._qvel[ids] = qvel
        # What mj_resetData clears that the next step reads: the solver's warm start; and the contact
        # sensors, so that state() shows no force until the new episode's first step.
        self._qacc_warmstart[ids] = 0.0
        self._sensordata[ids] = 0.0

    def step(self, commands: Any) -> None:
        self._ctrl.copy_(self._tensor(commands).reshape(self.num_envs, -1))
        with self._on_torch_stream():
            if self._graph is not None:
                wp.capture_launch(self._graph)
            else:
                self._substeps()

    def state(self) -> dict[str, torch.Tensor]:
        qpos, qvel = self._qpos, self._qvel
        agents_q = qpos[:, AGENT_QPOS0:].view(self.num_envs, NUM_AGENTS, 3)
        agents_v = qvel[:, AGENT_QVEL0:].view(self.num_envs, NUM_AGENTS, 3)
        forces = self._sensordata.view(self.num_envs, NUM_AGENTS, 3)
        return {
            "box_pos": qpos[:, 0:3],
            "box_quat": qpos[:, 3:7],
            "box_lin_vel": qvel[:, BOX_QVEL_LIN],
            "agent_pos": torch.cat([agents_q[:, :, :2], self._agent_z], dim=2),
            "agent_yaw": agents_q[:, :, 2],
            "agent_lin_vel": agents_v[:, :, :2],
            "agent_yaw_rate": agents_v[:, :, 2],
            "agent_box_force": forces.norm(dim=2),
        }

    def close(self) -> None:
        self._graph = None

    # ---------------------------------------------------------------------------------------- diagnostics

    def overflow(self) -> torch.Tensor:
        """(E,) int: `mujoco_warp.OverflowType` bits each world raised since its Data was made."""
        return wp.to_torch(self.data.overflow)

    # ------------------------------------------------------------------------------------------ internals

    def _substeps(self) -> None:
        for _ in range(self.physics.substeps):
            mjw.step(self.model, self.data)

    def _on_torch_stream(self) -> contextlib.AbstractContextManager:
        """Run Warp work on torch's current CUDA stream, in order with the torch ops that feed and read it
        (on the CPU device everything runs in order anyway)."""
        if self.device.type != "cuda":
            return wp.ScopedDevice(self.wp_device)
        stream = torch.cuda.current_stream(self.device)
        if stream.cuda_stream not in self._wp_streams:
            self._wp_streams[stream.cuda_stream] = wp.stream_from_torch(stream)
        return wp.ScopedStream(self._wp_streams[stream.cuda_stream])

    def _ids(self, env_ids: Any) -> torch.Tensor:
        return torch.as_tensor(env_ids, dtype=torch.long, device=self.device).reshape(-1)

    def _tensor(self, values: Any) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32, device=self.device)


def _torch_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _check_closed_forms_apply(mjm: mujoco.MjModel, box_body: int) -> None:
    """`set_box` derives mj_setConst's constants in closed form; fail loudly if the scene stops fitting them."""
    flat = (mjm.body_parentid[1:] == 0).all()
    box_aligned = (mjm.body_ipos[box_body] == 0).all() and (mjm.body_iquat[box_body] == [1, 0, 0, 0]).all()
    free = mjm.jnt_type[mjm.body_jntadr[box_body]] == mujoco.mjtJoint.mjJNT_FREE
    if not (flat and box_aligned and free):
        raise NotImplementedError(
            "WarpBackend.set_box assumes every body hangs off the world and the box is a free body whose "
            "inertia frame is its body frame; update its closed-form constants for this scene"
        )
