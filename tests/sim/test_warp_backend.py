"""The MuJoCo Warp backend on Warp's CPU device: same physics as the MuJoCo backend, per-world boxes, resets.

Skipped, with the reason, where `mujoco-warp` is not installed (`pip install -e ".[warp]"`); the first test pays
Warp's kernel compilation (~40 s once, then cached in ~/.cache/warp). On a GPU machine the same tests run on CUDA
(graph replay on torch's stream) with `MAPUSH_WARP_TEST_DEVICE=cuda` (benchmarks/RESULTS.md).
"""

import math
import os

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco_warp", reason="MuJoCo Warp is not installed: pip install -e '.[warp]'")

import mujoco_warp as mjw  # noqa: E402
import warp as wp  # noqa: E402

from mapush_rllib.sim.config import PhysicsConfig, SimConfig  # noqa: E402
from mapush_rllib.sim.mujoco_backend import MujocoBackend  # noqa: E402
from mapush_rllib.sim.warp_backend import PER_WORLD_FIELDS, WarpBackend  # noqa: E402
from mapush_rllib.task.calculator import first_episodes  # noqa: E402
from mapush_rllib.task.metrics import summarize  # noqa: E402
from mapush_rllib.task.scripted import ScriptedPushPolicy  # noqa: E402
from mapush_rllib.task.vec_env import MAPushVecEnv  # noqa: E402

DEVICE = os.environ.get("MAPUSH_WARP_TEST_DEVICE", "cpu")
PHYSICS = PhysicsConfig()
BOX_Z = PHYSICS.box_height_m / 2
FAR = 50.0
E = 4
IMPACT_STEPS = 10


@pytest.fixture(scope="module")
def warp_backend():
    return WarpBackend(E, PHYSICS, device=DEVICE)


@pytest.fixture(scope="module")
def mujoco_backend():
    return MujocoBackend(E, PHYSICS, num_threads=1)


def behind(size_m):
    """x of an agent whose nose touches the -x face of a box of side `size_m` (2 cm gap)."""
    return -(size_m / 2 + PHYSICS.agent_length_m / 2 + 0.02)


def box_poses(n):
    return np.tile([0.0, 0.0, BOX_Z, 0.0], (n, 1))


def numpy(value):
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def tensor(value):
    return torch.as_tensor(np.asarray(value), dtype=torch.float32, device=DEVICE)


def yaw_of(quat):
    quat = numpy(quat)
    w, x, y, z = quat.T
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y**2 + z**2))


def rollout(backend, sizes, masses, agents, commands, steps):
    """Give each env its box, reset it to the agents' poses, hold the commands; return the final state and the
    contact force per agent averaged after the first 0.2 s (the impact), as numpy arrays. The force chatters
    between 0 and ~2x its mean from step to step (soft contacts), on both backends."""
    n = len(sizes)
    backend.set_box(np.arange(n), [[s, s, PHYSICS.box_height_m] for s in sizes], masses, [0.55] * n)
    backend.reset_envs(np.arange(n), box_poses(n), np.asarray(agents, dtype=float), np.zeros((n, 2, 3)))
    force = 0.0
    for step in range(steps):
        backend.step(np.asarray(commands, dtype=np.float32))
        if step >= IMPACT_STEPS:
            force = force + numpy(backend.state()["agent_box_force"])
    return {k: numpy(v) for k, v in backend.state().items()}, force / (steps - IMPACT_STEPS)


# Four pushes of 3 s: two agents on a light box, one agent centred on a 20 kg box, one agent off-centre,
# two agents on a larger, heavier box.
SIZES = [1.2, 1.2, 1.2, 1.6]
MASSES = [4.0, 20.0, 4.0, 10.0]
AGENTS = [
    [[behind(1.2), -0.25, 0.0], [behind(1.2), 0.25, 0.0]],
    [[behind(1.2), 0.0, 0.0], [FAR, FAR, 0.0]],
    [[behind(1.2), 0.45, 0.0], [FAR, FAR, 0.0]],
    [[behind(1.6), -0.3, 0.0], [behind(1.6), 0.3, 0.0]],
]
COMMANDS = np.zeros((4, 2, 3))
COMMANDS[:, :, 0] = 0.5
COMMANDS[1:3, 1] = 0.0
STEPS = int(3.0 / PHYSICS.policy_dt_s)


@pytest.fixture(scope="module")
def pushes(warp_backend, mujoco_backend):
    return (
        rollout(warp_backend, SIZES, MASSES, AGENTS, COMMANDS, STEPS),
        rollout(mujoco_backend, SIZES, MASSES, AGENTS, COMMANDS, STEPS),
    )


def test_same_commands_give_close_states(pushes):
    (warp, _), (mjc, _) = pushes
    moved = mjc["box_pos"][:, 0]
    assert (moved > 0.5).all(), f"every push must move its box, MuJoCo moved {moved}"
    # Same collision routines, float32 against float64: micrometres apart after 3 s of pushing on the CPU device.
    # On CUDA the float atomics' order varies and contact chatter amplifies it: centimetres.
    atol = 1e-3 if DEVICE == "cpu" else 0.05
    np.testing.assert_allclose(warp["box_pos"][:, :2], mjc["box_pos"][:, :2], atol=atol)
    np.testing.assert_allclose(yaw_of(warp["box_quat"]), yaw_of(mjc["box_quat"]), atol=atol)
    np.testing.assert_allclose(warp["agent_pos"], mjc["agent_pos"], atol=atol)
    np.testing.assert_allclose(warp["agent_lin_vel"], mjc["agent_lin_vel"], atol=2 * atol)
    assert yaw_of(warp["box_quat"])[2] < -0.15, "a push left of centre turns the box clockwise"


def test_contact_force_sensor_reads_the_pushing_force(pushes):
    (_, warp_force), (_, mjc_force) = pushes
    # One agent keeping the 20 kg box sliding must at least overcome box-floor friction, mu m g, and can push with
    # at most its servo's force limit.
    friction_n = 0.5 * (0.55 + PHYSICS.ground_friction) * 20.0 * 9.81
    for force in (warp_force, mjc_force):
        assert friction_n <= force[1, 0] <= PHYSICS.agent_max_force_n * math.sqrt(2)
    assert warp_force[1, 0] == pytest.approx(mjc_force[1, 0], rel=0.15)
    assert warp_force[1, 1] == 0.0, "a parked agent touches nothing"
    # Team force on the other boxes: intermittent contact (the light box slides ahead), so a looser match.
    np.testing.assert_allclose(warp_force.sum(axis=1), mjc_force.sum(axis=1), rtol=0.3)


def test_per_world_box_parameters_change_only_their_world(warp_backend):
    warp_backend.set_box(np.arange(E), [[s, s, PHYSICS.box_height_m] for s in SIZES], MASSES, [0.55] * E)
    warp_backend.set_box([2], [[0.8, 0.8, PHYSICS.box_height_m]], [30.0], [0.6])
    fields = {name: wp.to_torch(getattr(warp_backend.model, name)).clone() for name in PER_WORLD_FIELDS}
    box, geom = warp_backend._box_body, warp_backend._box_geom
    assert fields["body_mass"][:, box].tolist() == pytest.approx([MASSES[0], MASSES[1], 30.0, MASSES[3]])
    assert fields["geom_size"][2, geom].tolist() == pytest.approx([0.4, 0.4, 0.25])
    assert fields["geom_friction"][2, geom, 0].item() == pytest.approx(0.5 * (0.6 + PHYSICS.ground_friction))
    # The closed-form constants set_box derives equal what mujoco_warp.set_const computes from the same inputs.
    with wp.ScopedDevice(warp_backend.wp_device):
        mjw.set_const(warp_backend.model, warp_backend.data)
    for name in ("geom_aabb", "geom_rbound", "body_subtreemass", "body_invweight0", "dof_invweight0"):
        torch.testing.assert_close(fields[name], wp.to_torch(getattr(warp_backend.model, name)), rtol=1e-5,
                                   atol=1e-6, msg=name)


def test_per_world_mass_acts_in_the_physics(warp_backend):
    sizes = [1.2] * 4
    agents = [[[behind(1.2), -0.25, 0.0], [behind(1.2), 0.25, 0.0]]] * 4
    commands = np.zeros((4, 2, 3))
    commands[:, :, 0] = 0.5
    state, _ = rollout(warp_backend, sizes, [4.0, 400.0, 4.0, 30.0], agents, commands, steps=100)
    light, immovable, light_again, heavy = state["box_pos"][:, 0]
    # Identical worlds evolve identically (bit for bit on the CPU; CUDA's float atomics add in any order).
    assert light == pytest.approx(light_again, abs=1e-4 if DEVICE == "cpu" else 1e-2)
    assert abs(immovable) < 0.02, "two agents cannot push 400 kg (friction 1275 N > 240 N)"
    assert 0.05 < heavy < light - 0.1


def test_reset_writes_listed_worlds_only(warp_backend):
    warp_backend.set_box(np.arange(E), np.tile([1.2, 1.2, 0.5], (E, 1)), np.full(E, 4.0), np.full(E, 0.55))
    warp_backend.reset_envs(np.arange(E), box_poses(E), np.tile([[-2.0, 0.0, 0.0], [2.0, 0.0, math.pi]], (E, 1, 1)),
                            np.zeros((E, 2, 3)))
    for _ in range(5):
        warp_backend.step(np.full((E, 2, 3), 0.3, dtype=np.float32))
    before = {k: v.clone() for k, v in warp_backend.state().items()}
    box = np.array([[1.0, -2.0, BOX_Z, 0.7], [0.5, 0.5, BOX_Z, -1.0]])
    agents = np.array([[[3.0, 1.0, 0.2], [-3.0, 1.0, 2.0]], [[0.0, 3.0, -0.5], [0.0, -3.0, 1.5]]])
    velocity = np.array([[[0.1, -0.05, 0.02], [0.0, 0.08, -0.1]], [[0.0, 0.0, 0.0], [-0.1, 0.1, 0.0]]])
    warp_backend.reset_envs([3, 1], box, agents, velocity)
    after = warp_backend.state()
    for k in after:
        torch.testing.assert_close(after[k][[0, 2]], before[k][[0, 2]], rtol=0, atol=0, msg=k)  # untouched
    torch.testing.assert_close(after["box_pos"][[3, 1]], tensor(box[:, :3]))
    assert yaw_of(after["box_quat"][[3, 1]]).tolist() == pytest.approx([0.7, -1.0], abs=1e-6)
    torch.testing.assert_close(after["agent_pos"][[3, 1], :, :2], tensor(agents[..., :2]))
    torch.testing.assert_close(after["agent_yaw"][[3, 1]], tensor(agents[..., 2]))
    torch.testing.assert_close(after["agent_lin_vel"][[3, 1]], tensor(velocity[..., :2]))
    torch.testing.assert_close(after["agent_yaw_rate"][[3, 1]], tensor(velocity[..., 2]))
    assert (after["box_lin_vel"][[3, 1]] == 0).all() and (after["agent_box_force"][[3, 1]] == 0).all()
    assert (wp.to_torch(warp_backend.data.qacc_warmstart)[[3, 1]] == 0).all()


def test_graph_replay_equals_step_by_step():
    graph, loop = WarpBackend(2, PHYSICS, device=DEVICE), WarpBackend(2, PHYSICS, device=DEVICE, use_graph=False)
    agents = np.array([[[behind(1.2), 0.1, 0.0], [FAR, FAR, 0.0]], [[-2.0, 0.5, 0.3], [2.0, -0.5, 2.0]]])
    commands = np.array([[[0.5, 0.0, 0.1], [0.0, 0.0, 0.0]], [[0.4, -0.2, 0.3], [0.3, 0.3, -0.3]]], dtype=np.float32)
    for backend in (graph, loop):
        backend.reset_envs([0, 1], box_poses(2), agents, np.zeros((2, 2, 3)))
        for _ in range(20):
            backend.step(commands)
    # Bit for bit on the CPU; CUDA's float atomics sum in any order, so there allow float32 rounding to grow.
    tolerance = 0.0 if DEVICE == "cpu" else 1e-3
    for key, value in graph.state().items():
        torch.testing.assert_close(value, loop.state()[key], rtol=0, atol=tolerance, msg=key)


def test_scripted_controller_agrees_with_mujoco_backend():
    """The calculator protocol on both backends (first episode of 32 envs, seed 0): same success, similar times."""
    summaries = {}
    for backend in ("mujoco", "mujoco_warp"):
        device = DEVICE if backend == "mujoco_warp" else "cpu"
        env = MAPushVecEnv(SimConfig(backend=backend, device=device, num_threads=1).with_num_envs(32), seed=0)
        stats, _ = first_episodes(env, ScriptedPushPolicy())
        summaries[backend] = summarize(stats)
        env.close()
    mjc, warp = summaries["mujoco"], summaries["mujoco_warp"]
    assert warp["success_rate"] >= 0.9
    assert abs(warp["success_rate"] - mjc["success_rate"]) <= 0.1
    assert warp["finish_time_s"] == pytest.approx(mjc["finish_time_s"], rel=0.15)
    assert warp["collaboration_degree"] == pytest.approx(mjc["collaboration_degree"], abs=0.15)


def test_a_diverged_world_stays_alone_and_recovers_at_reset(warp_backend):
    """A non-finite world is the task layer's exception, not an error: it must not spread, and a reset clears it."""
    warp_backend.set_box(np.arange(E), np.tile([1.2, 1.2, 0.5], (E, 1)), np.full(E, 4.0), np.full(E, 0.55))
    agents = np.tile([[behind(1.2), -0.25, 0.0], [behind(1.2), 0.25, 0.0]], (E, 1, 1))
    warp_backend.reset_envs(np.arange(E), box_poses(E), agents, np.zeros((E, 2, 3)))
    wp.to_torch(warp_backend.data.qvel)[1, 0] = float("nan")
    for _ in range(3):
        warp_backend.step(np.full((E, 2, 3), 0.5, dtype=np.float32))
    finite = torch.isfinite(warp_backend.state()["box_pos"]).all(dim=1).tolist()
    assert finite == [True, False, True, True]
    warp_backend.reset_envs([1, 2], box_poses(2), agents[:2], np.zeros((2, 2, 3)))  # the diverged and a healthy one
    for _ in range(10):
        warp_backend.step(np.full((E, 2, 3), 0.5, dtype=np.float32))
    state = warp_backend.state()
    assert all(torch.isfinite(v).all() for v in state.values())
    assert state["box_pos"][1, 0] > 0.05, "the box moves again"
    # Nothing of the divergence survives the reset: the two worlds reset together evolve alike.
    tolerance = 0.0 if DEVICE == "cpu" else 1e-3
    for key, value in state.items():
        torch.testing.assert_close(value[1], value[2], rtol=0, atol=tolerance, msg=key)
