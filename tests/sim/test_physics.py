"""Physical checks on the real simulators (issue 2 acceptance): embedded MuJoCo, and MuJoCo Warp on Warp's CPU
device where it is installed (issue 7: the checks pass on both backends)."""

import math
import os

import numpy as np
import pytest

from mapush_rllib.sim.config import PhysicsConfig
from mapush_rllib.sim.mujoco_backend import MujocoBackend

PHYSICS = PhysicsConfig()
SECONDS = 4.0
STEPS = int(SECONDS / PHYSICS.policy_dt_s)
FAR = 50.0  # park an unused agent far away


def run(backend, box_pose, agent_pose, commands, steps=STEPS):
    """Reset every env to the given poses, hold the (E, A, 3) commands, return the final state."""
    n = backend.num_envs
    backend.reset_envs(np.arange(n), box_pose, agent_pose, np.zeros((n, 2, 3)))
    for _ in range(steps):
        backend.step(commands)
    return {k: np.asarray(v.cpu() if hasattr(v, 'cpu') else v) for k, v in backend.state().items()}


def box_poses(n):
    return np.tile([0.0, 0.0, PHYSICS.box_height_m / 2, 0.0], (n, 1))


@pytest.fixture(scope="module", params=["mujoco", "mujoco_warp"])
def backend(request):
    if request.param == "mujoco":
        b = MujocoBackend(4, PHYSICS, num_threads=1)
    else:
        pytest.importorskip("mujoco_warp", reason="MuJoCo Warp is not installed: pip install -e '.[warp]'")
        from mapush_rllib.sim.warp_backend import WarpBackend

        b = WarpBackend(4, PHYSICS, device=os.environ.get("MAPUSH_WARP_TEST_DEVICE", "cpu"))
    b.set_box(np.arange(4), np.tile([1.2, 1.2, 0.5], (4, 1)), np.full(4, 4.0), np.full(4, 0.55))
    return b


def test_two_agents_side_by_side_push_further_than_one(backend):
    # env 0: two agents behind the box (-x side) facing +x; env 1: one agent centred, the other parked.
    behind = -(0.6 + 0.3 + 0.02)
    agents = np.array([
        [[behind, -0.25, 0.0], [behind, 0.25, 0.0]],
        [[behind, 0.0, 0.0], [FAR, FAR, 0.0]],
        [[behind, 0.0, 0.0], [FAR, FAR, 0.0]],
        [[behind, 0.0, 0.0], [FAR, FAR, 0.0]],
    ])
    commands = np.zeros((4, 2, 3))
    commands[:, :, 0] = 0.5
    commands[1:, 1] = 0.0
    state = run(backend, box_poses(4), agents, commands)
    two, one = state["box_pos"][0, 0], state["box_pos"][1, 0]
    assert one > 0.5, "a single agent must move the light default box"
    assert two > one + 0.05, f"two agents moved the box {two:.2f} m, one agent {one:.2f} m"


def test_off_centre_push_rotates_the_box(backend):
    behind = -(0.6 + 0.3 + 0.02)
    agents = np.tile([[behind, 0.0, 0.0], [FAR, FAR, 0.0]], (4, 1, 1))
    agents[1, 0, 1] = 0.45  # off-centre, left of the box's centre line
    commands = np.zeros((4, 2, 3))
    commands[:, 0, 0] = 0.5
    state = run(backend, box_poses(4), agents, commands)
    quat = state["box_quat"]
    w, x, y, z = quat.T
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y**2 + z**2))
    assert abs(yaw[0]) < 0.05, "a centred push keeps the heading"
    # Force +x applied at y = +0.45: torque r x F = -0.45 F, so the box turns clockwise.
    assert yaw[1] < -0.15, f"a push left of centre must turn the box clockwise, got {yaw[1]:.3f} rad"


def test_agents_do_not_pass_through_box_or_each_other(backend):
    agents = np.array([
        [[-1.5, 0.0, 0.0], [FAR, FAR, 0.0]],  # drives into a box too heavy to push
        [[-3.0, 20.0, 0.0], [3.0, 20.0, math.pi]],  # two agents head-on, far from the box
        [[-1.5, 0.0, 0.0], [FAR, FAR, 0.0]],
        [[-1.5, 0.0, 0.0], [FAR, FAR, 0.0]],
    ])
    commands = np.zeros((4, 2, 3))
    commands[:, 0, 0] = 0.5
    commands[1, 1, 0] = 0.5
    box = box_poses(4)
    backend.set_box([0], [[1.2, 1.2, 0.5]], [400.0], [0.6])  # too heavy to push: the agent must stop at the face
    try:
        state = run(backend, box, agents, commands, steps=int(8 / PHYSICS.policy_dt_s))
    finally:
        backend.set_box([0], [[1.2, 1.2, 0.5]], [4.0], [0.55])
    face = state["box_pos"][0, 0] - 0.6
    nose = state["agent_pos"][0, 0, 0] + PHYSICS.agent_length_m / 2
    assert nose <= face + 0.02, f"agent nose {nose:.3f} m passed the box face {face:.3f} m"
    assert nose > face - 0.1, "the agent should have reached the face"
    gap = np.linalg.norm(state["agent_pos"][1, 0, :2] - state["agent_pos"][1, 1, :2])
    assert gap >= PHYSICS.agent_length_m - 0.02, f"head-on agents interpenetrate: centres {gap:.3f} m apart"


def test_heavier_or_larger_box_moves_slower(backend):
    behind = lambda size: -(size / 2 + 0.3 + 0.02)  # noqa: E731
    sizes = [1.2, 1.2, 1.2, 1.6]
    masses = [4.0, 4.0, 30.0, 4.0 * (1.6 / 1.2) ** 2]
    backend.set_box(np.arange(4), [[s, s, 0.5] for s in sizes], masses, [0.55] * 4)
    try:
        agents = np.array([[[behind(s), -0.25, 0.0], [behind(s), 0.25, 0.0]] for s in sizes])
        commands = np.zeros((4, 2, 3))
        commands[:, :, 0] = 0.5
        commands[1] = 0.0  # env 1: nobody pushes (reference for "moves at all")
        state = run(backend, box_poses(4), agents, commands)
    finally:
        backend.set_box(np.arange(4), np.tile([1.2, 1.2, 0.5], (4, 1)), np.full(4, 4.0), np.full(4, 0.55))
    light, still, heavy, large = state["box_pos"][:, 0]
    assert abs(still) < 1e-3
    assert heavy < light - 0.1, f"30 kg box moved {heavy:.2f} m vs 4 kg {light:.2f} m"
    assert large < light, f"larger, heavier box moved {large:.2f} m vs {light:.2f} m"


def test_body_frame_command_tracking_within_5_percent(backend):
    # Free agents far from the box, rotated by various yaws; commands in the body frame.
    yaws = np.array([0.0, math.pi / 2, 2.5, -1.0])
    agents = np.zeros((4, 2, 3))
    agents[:, 0, :2] = [10.0, 10.0]
    agents[:, 1, :2] = [-10.0, -10.0]
    agents[:, 0, 2] = yaws
    agents[:, 1, 2] = -yaws
    command = np.array([0.4, -0.2, 0.3])
    commands = np.tile(command, (4, 2, 1))
    state = run(backend, box_poses(4), agents, commands, steps=50)
    yaw = state["agent_yaw"]
    vel = state["agent_lin_vel"]
    body_vx = np.cos(yaw) * vel[..., 0] + np.sin(yaw) * vel[..., 1]
    body_vy = -np.sin(yaw) * vel[..., 0] + np.cos(yaw) * vel[..., 1]
    measured = np.stack([body_vx, body_vy, state["agent_yaw_rate"]], axis=-1)
    np.testing.assert_allclose(measured, commands, rtol=0.05, atol=0.01)
