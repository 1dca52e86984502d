"""Isaac Gym backend: MAPush's own `go1push_mid` env (Isaac Gym Preview 4, two Go1s with the frozen
walk-these-ways locomotion policy) as a `PhysicsBackend`. It runs inside the simulator server, in the user's
Isaac Gym Python (3.8); see docs/isaacgym.md.

How MAPush's env is driven (file references are to collaborative-mapush/MAPush, spec = docs/mapush-task.md):
- Built with MAPush's `make_mqe_env("go1push_mid", args, custom_cfg)` (mqe/envs/utils.py), `args` from MAPush's
  own `mqe.utils.get_args`, so the sim parameters are exactly MAPush's (5 ms PhysX steps, decimation 4).
- `step(commands)` calls the unwrapped `Go1Object.step` with the (E*A, 3) commands. Go1.step clips them to
  +-1 and feeds them to the locomotion policy as m/s and rad/s (go1.py:35-61, spec §1.5). The mid-level
  wrapper's `step` is bypassed: it would scale by 0.5 again and compute MAPush's rewards, which the task
  layer computes itself (our commands already are 0.5 * clip(action), spec §2.2).
- MAPush's own termination and auto-reset are neutralised: `check_termination` is wrapped on the instance to
  clear `reset_buf` after MAPush computed it, so `post_physics_step` resets no env (legged_robot.py:143-185).
  The task layer decides every reset.
- `reset_envs` first runs MAPush's `reset_idx` on those envs (joint angles, gait clock, the 30-frame
  locomotion history, episode counter) and then overwrites the robots' and the box's root states with the
  task layer's poses in one `set_actor_root_state_tensor_indexed` call covering every actor of those envs.
- Box size and mass: Isaac Gym's GPU pipeline cannot change an actor's scale or mass after the sim starts
  (isaac-sim/IsaacGymEnvs docs/domain_randomization.md, `setup_only`). So every `box_variants` entry gets its
  own box actor in every env, built at start from a generated URDF; MAPush's SmallBox (1.2 m, 4 kg) is the
  native one. Unused boxes are parked on the floor 14 m from the work area (agents walk at most 10 m in an
  episode) and `set_box` swaps which one is active. Limits: only the listed (size, mass) pairs; each extra
  variant adds one actor per env. Friction is changed at run time (`set_actor_rigid_shape_properties`).
- Agent-box contact force: Isaac Gym's tensor API has per-body net contact forces, not per contact pair. We
  report the horizontal net contact force on a robot's non-foot bodies while its base is within
  CONTACT_GATE_M of the box surface; robot-robot contact there is counted too (a stated approximation).

Valid Python 3.8; imports only numpy at module level (Isaac Gym must be imported before torch).
"""

import copy
import os
import sys
import tempfile
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from mapush_rllib.sim.backend import PhysicsBackend

ENV_NAME = "go1push_mid"
BOX_SET_ENV_NAME = "go1push_mid_box_set"  # MAPush's env registered again with the box-variant actors
NATIVE_BOX = (1.2, 4.0)  # resources/objects/cuboid/SmallBox.urdf: 1.2 x 1.2 x 0.5 m, 4 kg (spec §1.2)
NATIVE_BOX_HEIGHT_M = 0.5
VARIANT_TOLERANCE = 1e-4  # |requested - built| below this selects a variant [m, kg]
PARK_XY_M = (-10.0, -10.0)  # first parking spot, relative to the box's reset position
PARK_SPACING_M = 4.5  # parked boxes sit in a row along +y (box sides are at most 4 m)
CONTACT_GATE_M = 0.45  # robot base within this of the box surface: its body contact counts as pushing
FALL_THRESHOLDS = {"roll": 0.8, "pitch": 1.6, "z_wave": 0.35}  # spec §1.4; MAPush's cfg values win if present

#: Isaac Gym's actor root state, 13 numbers per actor: position, quaternion (x, y, z, w), linear and angular velocity.
ROOT_STATE_SIZE = 13
ROOT_POS = slice(0, 3)
ROOT_XY = slice(0, 2)
ROOT_Z = 2
ROOT_QUAT = slice(3, 7)
ROOT_QUAT_W = 6
ROOT_QUAT_AS_WXYZ = [6, 3, 4, 5]  # indices that reorder (x, y, z, w) to the backend contract's (w, x, y, z)
ROOT_LIN_VEL = slice(7, 10)
ROOT_LIN_VEL_XY = slice(7, 9)
ROOT_YAW_RATE = 12  # angular velocity about z

#: MAPush files the env loads; Git LFS pointers or missing files fail env creation in obscure ways.
REQUIRED_ASSETS = (
    "resources/robots/go1/urdf/go1.urdf",
    "resources/objects/cuboid/SmallBox.urdf",
    "resources/objects/target.urdf",
    "resources/actuator_nets/unitree_go1.pt",
    "mqe/utils/locomotion_checkpoints/walk_these_ways/body_latest.jit",
    "mqe/utils/locomotion_checkpoints/walk_these_ways/adaptation_module_latest.jit",
)


class IsaacGymSetupError(RuntimeError):
    """Isaac Gym or MAPush is missing, the wrong Python runs the server, or MAPush's assets are absent."""


# ------------------------------------------------------------------------------------------- setup checks


def import_isaacgym() -> Tuple[Any, Any]:
    """(gymapi, gymtorch), or one error saying what to install."""
    try:
        from isaacgym import gymapi, gymtorch  # noqa: F401 -- must come before torch
    except ImportError as error:
        version = "{}.{}".format(*sys.version_info[:2])
        if sys.version_info[:2] > (3, 8):
            raise IsaacGymSetupError(
                "Isaac Gym is not importable in Python {} ({}): Isaac Gym Preview 4 supports Python 3.6-3.8 "
                "only. Set simulator.server.python to the Python of your Isaac Gym environment, e.g. "
                "~/miniconda3/envs/rlgpu/bin/python ({})".format(version, sys.executable, error)
            ) from None
        raise IsaacGymSetupError(
            "Isaac Gym is not installed for {} ({}). Download Isaac Gym Preview 4 from "
            "https://developer.nvidia.com/isaac-gym and run `pip install -e isaacgym/python` with this "
            "interpreter".format(sys.executable, error)
        ) from None
    return gymapi, gymtorch


def check_assets(mapush_path: str) -> None:
    """Raise IsaacGymSetupError naming every MAPush asset that is missing or a Git LFS pointer."""
    problems = []
    for relative in REQUIRED_ASSETS:
        path = os.path.join(mapush_path, relative)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            problems.append(relative + " (missing)")
            continue
        with open(path, "rb") as handle:
            if handle.read(40).startswith(b"version https://git-lfs"):
                problems.append(relative + " (a Git LFS pointer)")
    if problems:
        raise IsaacGymSetupError(
            "MAPush checkout {} lacks assets: {}. Run `git lfs pull` in the checkout, or copy these files from "
            "the upstream repository (collaborative-mapush/MAPush)".format(mapush_path, ", ".join(problems))
        )


def import_mapush(mapush_path: str) -> Tuple[Any, Any]:
    """(mqe.envs.utils, mqe.utils.get_args) from the checkout at `mapush_path`."""
    if not os.path.isdir(os.path.join(mapush_path, "mqe")):
        raise IsaacGymSetupError(
            "no MAPush checkout at {} (no mqe/ folder): git clone https://github.com/collaborative-mapush/MAPush "
            "and set simulator.server.isaacgym.mapush_path to it".format(mapush_path)
        )
    if mapush_path not in sys.path:
        sys.path.insert(0, mapush_path)
    try:
        from mqe.envs import utils as env_utils
        from mqe.utils import get_args
    except ImportError as error:
        raise IsaacGymSetupError(
            "MAPush at {} does not import ({}): run `pip install -e .` in the checkout with this "
            "interpreter ({})".format(mapush_path, error, sys.executable)
        ) from None
    return env_utils, get_args


# -------------------------------------------------------------------------------------- array helpers


def _numpy(x: Any) -> np.ndarray:
    """A numpy copy/view of a torch tensor (any device) or array."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _like(template: Any, values: Any, dtype: Any = None) -> Any:
    """`values` as the array type and device of `template` (MAPush's buffers are torch tensors on the GPU)."""
    if hasattr(template, "detach"):
        import torch

        return torch.as_tensor(np.asarray(values), device=template.device, dtype=dtype or template.dtype)
    return np.asarray(values, dtype=dtype or template.dtype)


def _index(template: Any, rows: Any) -> Any:
    if hasattr(template, "detach"):
        import torch

        return torch.as_tensor(np.asarray(rows, dtype=np.int64), device=template.device)
    return np.asarray(rows, dtype=np.int64)


def _yaw_quat_xyzw(yaw: np.ndarray) -> np.ndarray:
    half = 0.5 * np.asarray(yaw, dtype=np.float64)
    zeros = np.zeros_like(half)
    return np.stack([zeros, zeros, np.sin(half), np.cos(half)], axis=-1)


def _euler_from_quat_xyzw(q: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, pitch, yaw


def box_urdf(size_m: float, height_m: float, mass_kg: float) -> str:
    """A URDF box like MAPush's SmallBox.urdf, with the inertia of a solid cuboid."""
    a, h = size_m, height_m
    side, top = mass_kg * (a * a + h * h) / 12.0, mass_kg * (2 * a * a) / 12.0
    return (
        '<?xml version="1.0"?>\n<robot name="box">\n  <link name="box">\n'
        '    <visual><geometry><box size="{a} {a} {h}"/></geometry></visual>\n'
        '    <collision><geometry><box size="{a} {a} {h}"/></geometry></collision>\n'
        '    <inertial><mass value="{m}"/>'
        '<inertia ixx="{s}" ixy="0" ixz="0" iyy="{s}" iyz="0" izz="{t}"/></inertial>\n'
        "  </link>\n</robot>\n"
    ).format(a=a, h=h, m=mass_kg, s=side, t=top)


def box_set_class(base: Any, gymapi: Any, urdf_paths: List[str]) -> Any:
    """MAPush's Go1Object with one extra box actor per extra variant in every env, created parked.

    Extra variant k is npc 2 + k; its parking spot is its entry in cfg.init_state.init_states_npc.
    """

    class BoxSetGo1Object(base):
        def _create_npc(self, env_handle: Any, env_id: int) -> List[Any]:
            handles = super()._create_npc(env_handle, env_id)  # MAPush's box and target marker
            if not hasattr(self, "_variant_assets"):
                options = gymapi.AssetOptions()
                options.fix_base_link = False
                options.disable_gravity = False
                self._variant_assets = [
                    self.gym.load_asset(self.sim, os.path.dirname(p), os.path.basename(p), options) for p in urdf_paths
                ]
            origin = _numpy(self.env_origins[env_id])
            for k, asset in enumerate(self._variant_assets):
                pose = gymapi.Transform()
                parked = np.asarray(self.cfg.init_state.init_states_npc[2 + k].pos, dtype=np.float64)
                pose.p = gymapi.Vec3(*[float(v) for v in origin + parked])
                handles.append(self.gym.create_actor(env_handle, asset, pose, "box_variant_{}".format(k), env_id, 0, 0))
            return handles

    return BoxSetGo1Object


# -------------------------------------------------------------------------------------------- backend


class IsaacGymBackend(PhysicsBackend):
    """`num_envs` MAPush go1push_mid worlds in one Isaac Gym sim, stepped by MAPush's own env."""

    num_agents = 2

    def __init__(self, num_envs: int, options: Dict[str, Any]) -> None:
        self.num_envs = num_envs
        mapush_path = os.path.abspath(options["mapush_path"])
        self.gymapi, self.gymtorch = import_isaacgym()
        env_utils, get_args = import_mapush(mapush_path)
        check_assets(mapush_path)

        height = float(options.get("box_height_m", NATIVE_BOX_HEIGHT_M))
        if abs(height - NATIVE_BOX_HEIGHT_M) > VARIANT_TOLERANCE:
            raise IsaacGymSetupError(
                "simulator.physics.box_height_m is {} m, but MAPush's box is {} m high; set it to {}".format(
                    height, NATIVE_BOX_HEIGHT_M, NATIVE_BOX_HEIGHT_M
                )
            )
        self.box_height_m = height
        self.variants = [(float(v["size_m"]), float(v["mass_kg"])) for v in options["box_variants"]]
        extra = [v for v in self.variants if not _same_box(v, NATIVE_BOX)]
        self.park_offsets = np.array(
            [[PARK_XY_M[0], PARK_XY_M[1] + PARK_SPACING_M * k, height / 2] for k in range(len(extra) + 1)]
        )
        self.wrapper = self._make_env(env_utils, get_args, options, extra)
        self.env = env = self.wrapper.env
        self._check_env(options)

        # Index maps. Root-state rows of agents and npcs (box 0, target 1, extra box variants 2...).
        A = self.num_agents
        self._agent_rows = _numpy(env.agent_indices).astype(np.int64)  # (E, A)
        self._npc_rows = _numpy(env.npc_indices).astype(np.int64)  # (E, N)
        variant_npc = {v: (0 if _same_box(v, NATIVE_BOX) else 2 + extra.index(v)) for v in self.variants}
        self._variant_npc = [variant_npc[v] for v in self.variants]  # variant index -> npc slot
        self._box_npcs = sorted(set([0] + self._variant_npc))  # every box slot, native first
        self._active_npc = np.zeros(num_envs, dtype=np.int64)  # the native box until set_box says otherwise
        box_init = np.asarray(env.cfg.init_state.init_states_npc[0].pos, dtype=np.float64)
        self._origin = _numpy(env.env_origins).astype(np.float64) + np.array([box_init[0], box_init[1], 0.0])
        self._agent_z0 = float(env.cfg.init_state.init_states[0].pos[2])
        bodies = int(env.num_bodies)
        non_foot = np.ones(bodies, dtype=bool)
        non_foot[_numpy(env.feet_indices).astype(np.int64)] = False
        self._agent_bodies = np.arange(A * bodies).reshape(A, bodies)[:, non_foot]  # (A, non-foot bodies)
        termination = getattr(env.cfg, "termination", None)
        self._fall = dict(FALL_THRESHOLDS)
        for name in self._fall:
            kwargs = getattr(termination, name + "_kwargs", None) if termination is not None else None
            if isinstance(kwargs, dict) and "threshold" in kwargs:
                self._fall[name] = float(kwargs["threshold"])
        slot_size = np.full(2 + len(extra), NATIVE_BOX[0])
        for (size, _), slot in zip(self.variants, self._variant_npc):
            slot_size[slot] = size
        self._slot_half_size = slot_size / 2  # npc slot -> half box side (slot 1, the target, unused)
        self._neutralise_auto_reset()

    # ---------------------------------------------------------------------------------------- contract

    def set_box(self, env_ids: Sequence[int], size_m: Any, mass_kg: Any, friction: Any) -> None:
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        size = np.asarray(size_m, dtype=np.float64).reshape(-1, 3)
        mass = np.asarray(mass_kg, dtype=np.float64).reshape(-1)
        friction = np.asarray(friction, dtype=np.float64).reshape(-1)
        slots = np.empty(ids.size, dtype=np.int64)
        for i in range(ids.size):  # only at resets where the box changed
            slots[i] = self._variant_slot(int(ids[i]), size[i], mass[i])
        changed = slots != self._active_npc[ids]
        if changed.any():  # the new box takes the old one's place; the old one goes to its parking spot
            cids, new, old = ids[changed], slots[changed], self._active_npc[ids[changed]]
            root = _numpy(self.env.all_root_states)
            new_rows, old_rows = self._npc_rows[cids, new], self._npc_rows[cids, old]
            moved = root[old_rows].copy()
            parked = self._parked_states(cids, old)
            self._active_npc[cids] = new
            self._write_root_states(np.concatenate([new_rows, old_rows]), np.concatenate([moved, parked]), cids)
        gym, envs = self.env.gym, self.env.envs
        for env_id, slot, mu in zip(ids, slots, friction):
            handle = self.env.npc_handles[env_id][slot]
            props = gym.get_actor_rigid_shape_properties(envs[env_id], handle)
            for prop in props:
                prop.friction = float(mu)
            gym.set_actor_rigid_shape_properties(envs[env_id], handle, props)

    def reset_envs(self, env_ids: Sequence[int], box_pose: Any, agent_pose: Any, agent_vel: Any) -> None:
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return
        env, A, n = self.env, self.num_agents, ids.size
        box_pose = np.asarray(box_pose, dtype=np.float64).reshape(n, 4)
        agent_pose = np.asarray(agent_pose, dtype=np.float64).reshape(n, A, 3)
        agent_vel = np.asarray(agent_vel, dtype=np.float64).reshape(n, A, 3)
        env.reset_idx(_index(env.all_root_states, ids))  # MAPush: joints, gait clock, locomotion history

        origin = self._origin[ids]
        agents = np.zeros((n, A, ROOT_STATE_SIZE))
        agents[..., ROOT_XY] = agent_pose[..., :2] + origin[:, None, :2]
        agents[..., ROOT_Z] = origin[:, None, 2] + self._agent_z0
        agents[..., ROOT_QUAT] = _yaw_quat_xyzw(agent_pose[..., 2])
        agents[..., ROOT_LIN_VEL_XY] = agent_vel[..., :2]
        agents[..., ROOT_YAW_RATE] = agent_vel[..., 2]
        box = np.zeros((n, ROOT_STATE_SIZE))
        box[:, ROOT_POS] = box_pose[:, :3] + origin
        box[:, ROOT_QUAT] = _yaw_quat_xyzw(box_pose[:, 3])
        rows = [self._agent_rows[ids].reshape(-1), self._npc_rows[ids, self._active_npc[ids]]]
        states = [agents.reshape(-1, ROOT_STATE_SIZE), box]
        for slot in self._box_npcs:  # every inactive box back to its parking spot
            idle = self._active_npc[ids] != slot
            if idle.any():
                rows.append(self._npc_rows[ids[idle], slot])
                states.append(self._parked_states(ids[idle], np.full(int(idle.sum()), slot)))
        self._write_root_states(np.concatenate(rows), np.concatenate(states), ids)
        env.compute_observations()  # the locomotion policy's inputs for the new joint state

    def step(self, commands: Any) -> None:
        env = self.env
        commands = np.asarray(commands, dtype=np.float32).reshape(self.num_envs * self.num_agents, 3)
        env.step(_like(env.all_root_states, commands))

    def state(self) -> Dict[str, np.ndarray]:
        env, E = self.env, self.num_envs
        root = _numpy(env.all_root_states).astype(np.float64)
        box = root[self._npc_rows[np.arange(E), self._active_npc]]  # (E, ROOT_STATE_SIZE)
        agents = root[self._agent_rows]  # (E, A, ROOT_STATE_SIZE)
        box_pos = box[:, ROOT_POS] - self._origin
        agent_pos = agents[..., ROOT_POS] - self._origin[:, None]
        roll, pitch, yaw = _euler_from_quat_xyzw(agents[..., ROOT_QUAT])

        forces = _numpy(env.contact_forces).astype(np.float64).reshape(E, -1, 3)
        push = np.linalg.norm(forces[:, self._agent_bodies, :2].sum(axis=2), axis=-1)  # (E, A)
        box_yaw = _euler_from_quat_xyzw(box[:, ROOT_QUAT])[2]
        rel = agent_pos[..., :2] - box_pos[:, None, :2]
        c, s = np.cos(-box_yaw)[:, None], np.sin(-box_yaw)[:, None]
        local = np.stack([c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1]], axis=-1)
        half = self._slot_half_size[self._active_npc][:, None, None]
        outside = np.linalg.norm(np.maximum(np.abs(local) - half, 0.0), axis=-1)
        fallen = (
            (np.abs(roll) > self._fall["roll"])
            | (np.abs(pitch) > self._fall["pitch"])
            | (np.abs(agent_pos[..., 2] - self._agent_z0) > self._fall["z_wave"])
        )
        return {
            "box_pos": box_pos,
            "box_quat": box[:, ROOT_QUAT_AS_WXYZ],
            "box_lin_vel": box[:, ROOT_LIN_VEL],
            "agent_pos": agent_pos,
            "agent_yaw": yaw,
            "agent_lin_vel": agents[..., ROOT_LIN_VEL_XY],
            "agent_yaw_rate": agents[..., ROOT_YAW_RATE],
            "agent_box_force": np.where(outside < CONTACT_GATE_M, push, 0.0),
            "agent_fallen": fallen.astype(np.float64),
        }

    def close(self) -> None:
        env = getattr(self, "env", None)
        if env is not None and getattr(env, "viewer", None) is not None:
            env.gym.destroy_viewer(env.viewer)
        if env is not None:
            env.gym.destroy_sim(env.sim)
            self.env = None

    # --------------------------------------------------------------------------------------- internals

    def _make_env(self, env_utils: Any, get_args: Any, options: Dict[str, Any], extra: List[Tuple[float, float]]):
        num_envs, height, park = self.num_envs, self.box_height_m, self.park_offsets

        def configure(cfg: Any) -> Any:  # MAPush's custom_cfg hook: gets and returns the config class
            cfg.env.num_envs = num_envs
            cfg.env.record_video = False
            own = list(cfg.init_state.init_states_npc[:2])  # box, target marker
            parked = []
            for k in range(len(extra)):
                state = copy.deepcopy(own[0])
                state.pos = [float(own[0].pos[0] + park[k + 1, 0]), float(own[0].pos[1] + park[k + 1, 1]), height / 2]
                parked.append(state)
            cfg.init_state.init_states_npc = own + parked
            cfg.env.num_npcs = 2 + len(extra)
            return cfg

        name = ENV_NAME
        if extra:
            folder = tempfile.mkdtemp(prefix="mapush-box-variants-")
            paths = []
            for k, (size, mass) in enumerate(extra):
                paths.append(os.path.join(folder, "box_variant_{}.urdf".format(k)))
                with open(paths[-1], "w") as handle:
                    handle.write(box_urdf(size, height, mass))
            base = env_utils.ENV_DICT[ENV_NAME]
            env_utils.ENV_DICT[BOX_SET_ENV_NAME] = dict(
                base, **{"class": box_set_class(base["class"], self.gymapi, paths)}
            )
            name = BOX_SET_ENV_NAME
        argv = ["mapush_rllib.sim.server", "--num_envs", str(num_envs), "--seed", str(int(options.get("seed", 0))),
                "--sim_device", options.get("sim_device", "cuda:0"), "--rl_device", options.get("sim_device", "cuda:0")]
        if options.get("headless", True):
            argv.append("--headless")
        saved, sys.argv = sys.argv, argv
        try:
            args = get_args()  # MAPush's own parser (Isaac Gym's gymutil.parse_arguments), as its scripts use
        finally:
            sys.argv = saved
        args.num_envs = num_envs
        wrapper, _ = env_utils.make_mqe_env(name, args, custom_cfg=configure)
        return wrapper

    def _check_env(self, options: Dict[str, Any]) -> None:
        env = self.env
        if int(env.num_agents) != self.num_agents:
            raise IsaacGymSetupError("MAPush env has {} agents; this project needs 2".format(env.num_agents))
        dt = float(env.dt)
        wanted = float(options.get("policy_dt_s", dt))
        if abs(dt - wanted) > 1e-9:
            raise IsaacGymSetupError(
                "MAPush steps {} s per policy step (sim.dt x control.decimation) but simulator.physics gives {} s "
                "(physics_dt_s x substeps); set physics_dt_s: 0.005 and substeps: 4".format(dt, wanted)
            )

    def _neutralise_auto_reset(self) -> None:
        """Let MAPush compute its termination buffers, then clear reset_buf so post_physics_step resets nothing."""
        env = self.env
        mapush_check_termination = env.check_termination

        def check_termination_without_resets() -> Any:
            result = mapush_check_termination()
            env.reset_buf[:] = False
            return result

        env.check_termination = check_termination_without_resets

    def _variant_slot(self, env_id: int, size: np.ndarray, mass: float) -> int:
        for k, (v_size, v_mass) in enumerate(self.variants):
            same_size = np.all(np.abs(size[:2] - v_size) <= VARIANT_TOLERANCE)
            same_height = abs(size[2] - self.box_height_m) <= VARIANT_TOLERANCE
            if same_size and same_height and abs(mass - v_mass) <= VARIANT_TOLERANCE:
                return self._variant_npc[k]
        built = ", ".join("{} m / {} kg".format(s, m) for s, m in self.variants)
        raise ValueError(
            "env {}: box {} x {} x {} m, {} kg was not built. Isaac Gym cannot resize or re-weigh an actor after "
            "the sim starts, so every box must be listed in simulator.server.isaacgym.box_variants (built: {}); "
            "add it there or keep the curriculum's box_size_m / box_mass_kg to those values".format(
                env_id, size[0], size[1], size[2], mass, built
            )
        )

    def _parked_states(self, env_ids: np.ndarray, slots: np.ndarray) -> np.ndarray:
        order = {slot: k for k, slot in enumerate(self._box_npcs)}
        states = np.zeros((len(env_ids), ROOT_STATE_SIZE))
        states[:, ROOT_POS] = self._origin[env_ids] + self.park_offsets[[order[int(s)] for s in slots]]
        states[:, ROOT_QUAT_W] = 1.0  # identity quaternion
        return states

    def _write_root_states(self, rows: np.ndarray, states: np.ndarray, env_ids: np.ndarray) -> None:
        """Write root-state rows and push every actor of `env_ids` to the sim in one indexed call.

        One call covering all actors of the envs: several indexed calls before one simulate may keep only
        the last, so this call also carries what MAPush's reset_idx wrote for the other actors.
        """
        env = self.env
        env.all_root_states[_index(env.all_root_states, rows)] = _like(env.all_root_states, states)
        actor_ids = env.actor_indices[_index(env.actor_indices, env_ids)].reshape(-1)
        env.gym.set_actor_root_state_tensor_indexed(
            env.sim,
            self.gymtorch.unwrap_tensor(env.all_root_states),
            self.gymtorch.unwrap_tensor(actor_ids),
            len(actor_ids),
        )


def _same_box(a: Tuple[float, float], b: Tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) <= VARIANT_TOLERANCE and abs(a[1] - b[1]) <= VARIANT_TOLERANCE
