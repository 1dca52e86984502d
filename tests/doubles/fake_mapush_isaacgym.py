"""TEST DOUBLE of Isaac Gym Preview 4 and of MAPush's `go1push_mid` env -- not a simulator.

Isaac Gym cannot be installed here (NVIDIA download, CUDA GPU, Python <= 3.8), so the Isaac Gym backend
(`mapush_rllib.sim.isaacgym_backend`) is tested against this double. It reproduces the *interface* the
adapter uses -- names, call order, tensor layouts and shapes -- as documented in docs/mapush-task.md
and read in collaborative-mapush/MAPush @0e61e1b (cited per item below); its dynamics are trivially simple.

Reproduced:
- `mqe.envs.utils.make_mqe_env(name, args, custom_cfg)` -> (wrapper, cfg), `ENV_DICT`, `custom_cfg` receiving
  and returning the config class (mqe/envs/utils.py:34-44); `mqe.utils.get_args()` parsing sys.argv.
- `Go1Object` attributes: `all_root_states` (num_envs * actors_per_env, 13) rows (x, y, z, qx, qy, qz, qw,
  lin vel, ang vel), `actor_indices` / `agent_indices` / `npc_indices` int32 sim-domain indices, `env_origins`
  (all envs share one origin, spec §1.2), `contact_forces` (num_envs, bodies_per_env, 3) with 17 bodies per
  Go1 and `feet_indices`, `num_bodies`, `dt` = decimation * sim dt, `cfg`, `gym`, `sim`, `envs`, `npc_handles`
  (legged_robot.py:804-860, 1085-1160).
- `step(actions (E*A, 3))`: clip to +-1, 4 substeps, then `post_physics_step`: refresh the root-state mirror,
  `check_termination` (success < 1 m, timeout, roll / pitch / z-wave / collision exceptions), then
  `reset_idx` of every env in `reset_buf` -- MAPush's auto-reset (legged_robot.py:143-185, go1.py:35-61).
- `reset_idx(env_ids)`: MAPush's own reset distribution (box at origin + (12, 0, 0.3), agents on a 1.2-1.3 m
  ring) written with `set_actor_root_state_tensor_indexed`, joint and locomotion-history reset (go1.py:120-144).
- `_create_npc(env_handle, env_id)` as the actor-creation hook (npc/go1_object.py:93-125).
- Isaac Gym: the root-state tensor is a *mirror* refreshed after `simulate`; `set_actor_root_state_tensor_indexed`
  takes effect at the next `simulate`, and of several indexed calls before one `simulate` only the last one
  does (the behaviour the adapter guards against). Rigid-shape friction get/set; `load_asset` of a box URDF.

Simplified: perfect velocity tracking instead of the walk-these-ways policy; a touching agent drags the box at
its own velocity; contact force of 50 N on a touching robot's trunk and a constant ground force on each foot.
Tensors are torch CPU tensors when torch is importable, numpy arrays otherwise (the Python 3.8 test venv).
"""

import math
import sys
import xml.etree.ElementTree as ElementTree

import numpy as np

try:  # MAPush's buffers are torch tensors; the py3.8 test interpreter has only numpy
    import torch
except ImportError:  # pragma: no cover - exercised by the Python 3.8 server test
    torch = None

NUM_BODIES = 17  # Go1: trunk + 4 x (hip, thigh, calf, foot)
FEET = [4, 8, 12, 16]
ENV_ORIGIN = (1.0, 13.0, 0.0)  # spec §1.2 [derived]
TRUNK_FORCE_N = 50.0
FOOT_FORCE = (3.0, 0.0, 30.0)


def _tensor(array, dtype=None):
    array = np.ascontiguousarray(array, dtype=dtype)
    return torch.from_numpy(array) if torch is not None else array


def _np(x):
    return x.numpy() if torch is not None and isinstance(x, torch.Tensor) else np.asarray(x)


# ---------------------------------------------------------------------------------------- isaacgym.gymapi


SIM_PHYSX = 1
DOMAIN_SIM = 2


class Vec3(object):
    def __init__(self, x=0.0, y=0.0, z=0.0):
        self.x, self.y, self.z = float(x), float(y), float(z)


class Quat(object):
    def __init__(self, x=0.0, y=0.0, z=0.0, w=1.0):
        self.x, self.y, self.z, self.w = x, y, z, w


class Transform(object):
    def __init__(self):
        self.p, self.r = Vec3(), Quat()


class AssetOptions(object):
    def __init__(self):
        self.fix_base_link = False
        self.disable_gravity = False


class FakeShapeProperties(object):
    def __init__(self, friction):
        self.friction = friction


class FakeAsset(object):
    """A box asset parsed from a URDF: the double only needs its footprint and mass."""

    def __init__(self, size, mass):
        self.size, self.mass = size, mass


class FakeGym(object):
    """The gym handle: actor bookkeeping, shape properties and the pending indexed root-state write."""

    def __init__(self):
        self.actor_friction = {}  # (env index, actor handle) -> friction
        self.actor_asset = {}  # (env index, actor handle) -> FakeAsset or None (robots)
        self.env_actor_count = []
        self.pending_root_write = None  # (rows, values) applied at the next simulate
        self.indexed_root_writes = 0
        self.destroyed = False

    def create_env(self, sim, lower, upper, per_row):
        self.env_actor_count.append(0)
        return len(self.env_actor_count) - 1

    def load_asset(self, sim, root, filename, options):
        link = ElementTree.parse(root + "/" + filename).getroot().find("link")
        size = [float(v) for v in link.find("collision/geometry/box").get("size").split()]
        return FakeAsset(size, float(link.find("inertial/mass").get("value")))

    def create_actor(self, env, asset, pose, name, group, filter_, segmentation):
        handle = self.env_actor_count[env]
        self.env_actor_count[env] += 1
        self.actor_asset[(env, handle)] = asset
        self.actor_friction[(env, handle)] = 0.55
        self.actor_start = getattr(self, "actor_start", {})
        self.actor_start[(env, handle)] = (pose.p.x, pose.p.y, pose.p.z)
        return handle

    def get_actor_rigid_shape_properties(self, env, handle):
        return [FakeShapeProperties(self.actor_friction[(env, handle)])]

    def set_actor_rigid_shape_properties(self, env, handle, props):
        self.actor_friction[(env, handle)] = props[0].friction
        return True

    def set_actor_root_state_tensor_indexed(self, sim, root_states, indices, count):
        rows = _np(indices).astype(np.int64).reshape(-1)[:count].copy()
        self.pending_root_write = (rows, _np(root_states)[rows].copy())  # the last call before simulate wins
        self.indexed_root_writes += 1
        return True

    def destroy_sim(self, sim):
        self.destroyed = True


def unwrap_tensor(tensor):  # isaacgym.gymtorch
    return tensor


def wrap_tensor(tensor):  # isaacgym.gymtorch
    return tensor


# ---------------------------------------------------------------------------------------- MAPush config


class InitState(object):
    def __init__(self, pos, rot=(0.0, 0.0, 0.0, 1.0), lin_vel=(0.0, 0.0, 0.0), ang_vel=(0.0, 0.0, 0.0)):
        self.pos, self.rot, self.lin_vel, self.ang_vel = list(pos), list(rot), list(lin_vel), list(ang_vel)


class FakeGo1PushMidCfg(object):
    """The fields of `Go1PushMidCfg` (task/cuboid/config.py, spec §1.2) that the double and adapter read."""

    class env(object):
        num_envs = 10
        num_agents = 2
        num_npcs = 2
        episode_length_s = 20
        record_video = False

    class sim(object):
        dt = 0.005

    class control(object):
        decimation = 4
        control_type = "C"

    class init_state(object):
        init_state_class = InitState
        init_states = [InitState([11.0, -1.0, 0.45]), InitState([11.0, 1.0, 0.45])]
        init_states_npc = [InitState([12.0, 0.0, 0.30]), InitState([8.0, 0.0, 0.1])]

    class termination(object):
        roll_kwargs = dict(threshold=0.8)
        pitch_kwargs = dict(threshold=1.6)
        z_wave_kwargs = dict(threshold=0.35)
        collision_kwargs = dict(threshold=0.25)
        termination_terms = ["roll", "pitch", "z_wave", "collision"]

    class goal(object):
        THRESHOLD = 1.0
        random_goal_distance_from_init = [1.5, 3.0]

    class domain_rand(object):
        friction_range = [0.5, 0.6]
        init_base_pos_range = dict(r=[1.2, 1.3], theta=[-0.01, 2 * np.pi])

    class asset(object):
        file_npc = "{LEGGED_GYM_ROOT_DIR}/resources/objects/cuboid/SmallBox.urdf"


# ------------------------------------------------------------------------------------------ MAPush env


class FakeGo1Object(object):
    """Stands in for `Go1Object`: same buffers and call order, trivial physics."""

    def __init__(self, cfg, sim_params, physics_engine, sim_device, headless):
        self.cfg = cfg
        self.device = "cpu"
        self.headless = headless
        self.num_envs = cfg.env.num_envs
        self.num_agents = cfg.env.num_agents
        self.num_npcs = cfg.env.num_npcs
        self.decimation = cfg.control.decimation
        self.sim_dt = cfg.sim.dt
        self.dt = self.decimation * self.sim_dt
        self.max_episode_length = math.ceil(cfg.env.episode_length_s / self.dt)
        self.num_bodies = NUM_BODIES
        self.rng = np.random.RandomState(0)
        self.gym, self.sim = FakeGym(), object()
        E, A, N = self.num_envs, self.num_agents, self.num_npcs
        self.env_origins = _tensor(np.tile(ENV_ORIGIN, (E, 1)), np.float32)
        self.feet_indices = _tensor(FEET, np.int64)
        robot = FakeAsset(None, 12.0)
        smallbox = FakeAsset([1.2, 1.2, 0.5], 4.0)
        self.asset_npc, self._asset_npc = smallbox, None
        self.envs, self.npc_handles, self.actor_handles = [], [], []
        for i in range(E):
            handle = self.gym.create_env(self.sim, None, None, 1)
            agents = [self.gym.create_actor(handle, robot, Transform(), "go1", i, 0, 0) for _ in range(A)]
            npcs = self._create_npc(handle, i)
            if len(npcs) != N:
                raise AssertionError("_create_npc made {} actors, cfg.env.num_npcs is {}".format(len(npcs), N))
            self.envs.append(handle)
            self.npc_handles.append(npcs)
            self.actor_handles.append(agents + npcs)
        per_env = A + N
        actor = np.arange(E * per_env, dtype=np.int32).reshape(E, per_env)
        self.actor_indices = _tensor(actor)
        self.agent_indices = _tensor(actor[:, :A])
        self.npc_indices = _tensor(actor[:, A:])
        self.box_sizes = np.array([[self.gym.actor_asset[(i, h)].size[0] if h != self.npc_handles[i][1] else np.nan
                                    for h in self.npc_handles[i]] for i in range(E)])
        self._physx = np.zeros((E * per_env, 13))  # the simulator's own state
        self._physx[:, 6] = 1.0
        for i in range(E):
            for j, h in enumerate(self.actor_handles[i]):
                self._physx[actor[i, j], :3] = self.gym.actor_start.get((i, h), (0.0, 0.0, 0.0))
        self.all_root_states = _tensor(self._physx, np.float32)
        self.contact_forces = _tensor(np.zeros((E, A * NUM_BODIES + N, 3)), np.float32)
        self.dof_pos = _tensor(np.zeros((E, A * 12)), np.float32)
        self.history_locomotion_obs = _tensor(np.zeros((E * A, 2100)), np.float32)
        self.episode_length_buf = _tensor(np.zeros(E), np.int64)
        self.reset_buf = _tensor(np.zeros(E, dtype=bool))
        self.exception_buf = _tensor(np.zeros(E, dtype=bool))
        self.finished_buf = _tensor(np.zeros(E, dtype=bool))
        self.last_commands = np.zeros((E * A, 3))
        self.reset_idx_calls = []
        self.reset_idx(np.arange(E))
        self._simulate()  # the constructor leaves the sim consistent, as BaseTask does
        self._refresh()

    # -- MAPush hook (go1_object.py): the box and the target marker
    def _create_npc(self, env_handle, env_id):
        pose = Transform()
        box = self.gym.create_actor(env_handle, self.asset_npc, pose, "box", env_id, 0, 0)
        target = self.gym.create_actor(env_handle, self._asset_npc, pose, "target_area", env_id, 1, 0)
        return [box, target]

    # -- the step of Go1 (go1.py:35-61) and LeggedRobot.post_physics_step (legged_robot.py:143-185)
    def step(self, actions):
        actions = np.clip(_np(actions).reshape(self.num_envs * self.num_agents, 3), -1.0, 1.0)
        self.last_commands = actions.astype(np.float64)
        for _ in range(self.decimation):
            self._simulate()
        self.post_physics_step()
        return None, None, self.reset_buf, {}

    def post_physics_step(self):
        self._refresh()
        self.episode_length_buf += 1
        self.check_termination()
        env_ids = np.flatnonzero(_np(self.reset_buf))
        self.reset_idx(env_ids)
        self.compute_observations()

    def check_termination(self):
        root = _np(self.all_root_states).astype(np.float64)
        agents = root[_np(self.agent_indices).astype(np.int64)]
        npcs = root[_np(self.npc_indices).astype(np.int64)]
        distance = np.linalg.norm(npcs[:, 0, :2] - npcs[:, 1, :2], axis=1)
        self.finished_buf[:] = _tensor(distance < self.cfg.goal.THRESHOLD)
        x, y, z, w = (agents[..., 3 + k] for k in range(4))
        roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
        pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1, 1))
        z_wave = np.abs(agents[..., 2] - self.cfg.init_state.init_states[0].pos[2])
        apart = np.linalg.norm(agents[:, 0, :3] - agents[:, 1, :3], axis=1)
        t = self.cfg.termination
        exception = ((np.abs(roll) > t.roll_kwargs["threshold"]) | (np.abs(pitch) > t.pitch_kwargs["threshold"])
                     | (z_wave > t.z_wave_kwargs["threshold"])).any(axis=1) | (apart < t.collision_kwargs["threshold"])
        self.exception_buf[:] = _tensor(exception)
        time_out = _np(self.episode_length_buf) > self.max_episode_length
        self.reset_buf = _tensor(time_out | (distance < self.cfg.goal.THRESHOLD) | exception)

    # -- Go1.reset_idx (go1.py:120-144) with LeggedRobot._reset_root_states' distribution (legged_robot.py:479-661)
    def reset_idx(self, env_ids):
        ids = np.asarray(_np(env_ids), dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return
        self.reset_idx_calls.append(ids.copy())
        A = self.num_agents
        root = _np(self.all_root_states)
        origin = np.asarray(ENV_ORIGIN)
        npc_rows = _np(self.npc_indices).astype(np.int64)[ids]
        for j, state in enumerate(self.cfg.init_state.init_states_npc):
            root[npc_rows[:, j], :3] = origin + np.asarray(state.pos)
            root[npc_rows[:, j], 3:] = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        r = self.rng.uniform(1.2, 1.3, (ids.size, A))
        theta = self.rng.uniform(0, 2 * np.pi, (ids.size, A))
        box = origin + np.asarray(self.cfg.init_state.init_states_npc[0].pos)
        agent_rows = _np(self.agent_indices).astype(np.int64)[ids]
        root[agent_rows, 0] = box[0] + r * np.cos(theta)
        root[agent_rows, 1] = box[1] + r * np.sin(theta)
        root[agent_rows, 2] = self.cfg.init_state.init_states[0].pos[2]
        root[agent_rows, 3:7] = [0, 0, 0, 1]
        root[agent_rows, 7:] = 0.0
        self.dof_pos[_tensor(ids)] = _tensor(self.rng.uniform(0.7, 1.3, (ids.size, A * 12)), np.float32)
        history = _np(self.history_locomotion_obs).reshape(self.num_envs, A, -1)
        history[ids] = 0.0
        self.episode_length_buf[_tensor(ids)] = 0
        actors = _np(self.actor_indices)[ids].reshape(-1)
        self.gym.set_actor_root_state_tensor_indexed(self.sim, self.all_root_states, _tensor(actors), actors.size)

    def compute_observations(self):
        self.observations_computed = getattr(self, "observations_computed", 0) + 1

    # -- "PhysX"
    def _simulate(self):
        if self.gym.pending_root_write is not None:
            rows, values = self.gym.pending_root_write
            self._physx[rows] = values
            self.gym.pending_root_write = None
        E, A, N = self.num_envs, self.num_agents, self.num_npcs
        state = self._physx
        agent_rows = _np(self.agent_indices).astype(np.int64)
        npc_rows = _np(self.npc_indices).astype(np.int64)
        agents = state[agent_rows]  # (E, A, 13)
        yaw = 2 * np.arctan2(agents[..., 5], agents[..., 6])
        cmd = self.last_commands.reshape(E, A, 3)
        velocity = np.stack([np.cos(yaw) * cmd[..., 0] - np.sin(yaw) * cmd[..., 1],
                             np.sin(yaw) * cmd[..., 0] + np.cos(yaw) * cmd[..., 1]], axis=-1)
        forces = np.zeros((E, A * NUM_BODIES + N, 3))
        forces[:, [a * NUM_BODIES + f for a in range(A) for f in FEET]] = FOOT_FORCE
        for slot in range(N):
            if slot == 1:
                continue  # the target marker has no collision
            box = state[npc_rows[:, slot]]
            rel = agents[..., :2] - box[:, None, :2]
            reach = self.box_sizes[:, slot][:, None] / 2 + 0.3
            touching = (np.abs(rel) < reach[..., None]).all(axis=-1)  # (E, A)
            pushers = np.maximum(touching.sum(axis=1), 1)[:, None]
            drag = np.where(touching[..., None], velocity, 0.0).sum(axis=1) / pushers
            state[npc_rows[:, slot], 7:9] = drag
            state[npc_rows[:, slot], :2] += drag * self.sim_dt
            direction = -rel / np.maximum(np.linalg.norm(rel, axis=-1, keepdims=True), 1e-6)
            trunk = forces[:, [a * NUM_BODIES for a in range(A)], :2]
            forces[:, [a * NUM_BODIES for a in range(A)], :2] = trunk + np.where(
                touching[..., None], TRUNK_FORCE_N * direction, 0.0)
        state[agent_rows, 7:9] = velocity
        state[agent_rows, 12] = cmd[..., 2]
        state[agent_rows, :2] += velocity * self.sim_dt
        new_yaw = yaw + cmd[..., 2] * self.sim_dt
        tilt = agents[..., 3:5]  # keep any roll/pitch component a test put there
        state[agent_rows, 3:5] = tilt
        state[agent_rows, 5] = np.sin(new_yaw / 2) * np.sqrt(np.maximum(1 - (tilt ** 2).sum(-1), 0.0))
        state[agent_rows, 6] = np.cos(new_yaw / 2) * np.sqrt(np.maximum(1 - (tilt ** 2).sum(-1), 0.0))
        self._forces = forces

    def _refresh(self):  # refresh_actor_root_state_tensor / refresh_net_contact_force_tensor
        _np(self.all_root_states)[:] = self._physx
        _np(self.contact_forces)[:] = getattr(self, "_forces", 0.0)


class FakeGo1PushMidWrapper(object):
    """`Go1PushMidWrapper`'s surface: `.env`, counts, and a `step` that applies the 0.5 action scale."""

    def __init__(self, env):
        self.env = env
        self.num_envs, self.num_agents, self.num_npcs = env.num_envs, env.num_agents, env.num_npcs
        self.cfg = env.cfg

    def reset(self):
        self.env.reset_idx(np.arange(self.num_envs))
        return None

    def step(self, action):
        return self.env.step(np.clip(_np(action), -1, 1) * 0.5)


ENV_DICT = {"go1push_mid": {"class": FakeGo1Object, "config": FakeGo1PushMidCfg, "wrapper": FakeGo1PushMidWrapper}}


def make_mqe_env(env_name, args=None, custom_cfg=None):
    env_dict = ENV_DICT[env_name]
    if callable(custom_cfg):
        env_dict["config"] = custom_cfg(env_dict["config"])
    cfg = env_dict["config"]
    cfg.env.num_envs = args.num_envs if getattr(args, "num_envs", None) is not None else cfg.env.num_envs
    env = env_dict["class"](cfg, None, args.physics_engine, args.sim_device, args.headless)
    return env_dict["wrapper"](env), cfg


def get_args():
    """`mqe.utils.get_args`: Isaac Gym's argument parser over sys.argv (helpers.py:160-190)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--headless", action="store_true")
    parser.add_argument("--num_envs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sim_device", default="cuda:0")
    parser.add_argument("--rl_device", default="cuda:0")
    args = parser.parse_args(sys.argv[1:])
    args.physics_engine = SIM_PHYSX
    args.use_gpu_pipeline = args.sim_device.startswith("cuda")
    return args


def reset_registry():
    """Undo what a test's make_mqe_env did to the (class-level, process-global) config, as a fresh process would."""
    FakeGo1PushMidCfg.env.num_npcs = 2
    FakeGo1PushMidCfg.init_state.init_states_npc = [InitState([12.0, 0.0, 0.30]), InitState([8.0, 0.0, 0.1])]
    for name in [n for n in ENV_DICT if n != "go1push_mid"]:
        del ENV_DICT[name]
    ENV_DICT["go1push_mid"]["config"] = FakeGo1PushMidCfg

