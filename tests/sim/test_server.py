"""The simulator server: the embedded MuJoCo backend through a real server process equals in-process stepping;
server failures surface as clear errors, never as hangs; the server side stays valid Python 3.8."""

from __future__ import annotations

import ast
import os
import signal
import stat
import sys
import time

import numpy as np
import pytest
import torch

from mapush_rllib.sim.client import ServerBackend, SimulatorServerError
from mapush_rllib.sim.config import ServerConfig, SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.vec_env import MAPushVecEnv

from .conftest import ROOT

torch.set_num_threads(1)

#: Modules the server process imports before it hosts a backend: they must parse as Python 3.8.
SERVER_SIDE_MODULES = [
    "mapush_rllib/__init__.py",
    "mapush_rllib/sim/__init__.py",
    "mapush_rllib/sim/server.py",
    "mapush_rllib/sim/ipc.py",
    "mapush_rllib/sim/backend.py",
    "mapush_rllib/sim/isaacgym_backend.py",
]
#: ... and import nothing at module level but these and the standard library.
ALLOWED_THIRD_PARTY = {"numpy", "mapush_rllib"}


def _sim(**server) -> SimConfig:
    return SimConfig(backend="server", num_threads=1, server=ServerConfig(**server))


def _assert_same_step(a, b, step):
    for name in ("obs", "next_obs", "state", "next_state", "rewards", "reward_terms", "terminated", "truncated",
                 "success", "exception"):
        assert torch.equal(getattr(a, name), getattr(b, name)), f"step {step}: {name} differs"
    assert (a.episodes is None) == (b.episodes is None), f"step {step}: episode ends differ"
    if a.episodes is not None:
        assert torch.equal(a.episodes.env_ids, b.episodes.env_ids)
        assert torch.equal(a.episodes.term_sums, b.episodes.term_sums)


def test_server_stepping_equals_in_process_stepping():
    """Same seeds, same actions, same task-parameter changes: bit-identical results through the server."""
    task = TaskConfig(episode_length_s=0.6)  # 30-step episodes, so auto-resets run through the server too
    kwargs = dict(seed=11, env_id_offset=3)
    local = MAPushVecEnv(SimConfig(num_envs=6, num_threads=1), task, **kwargs)
    served = MAPushVecEnv(_sim().with_num_envs(6), task, **kwargs)
    try:
        assert served.backend.state_fields == list(local.backend.state().keys())
        assert torch.equal(local.obs, served.obs)
        generator = torch.Generator().manual_seed(5)
        ended = 0
        for step in range(120):
            if step == 40:  # the curriculum's calls: box size and mass (set_box), target distance
                for env in (local, served):
                    env.set_task_params([0, 2, 5], box_size_m=1.0, box_mass_kg=3.0, target_distance_m=[1.2, 1.6])
            actions = torch.rand(6, 2, 3, generator=generator) * 2 - 1
            a, b = local.step(actions), served.step(actions)
            _assert_same_step(a, b, step)
            ended += 0 if a.episodes is None else len(a.episodes.env_ids)
        assert ended >= 12, "the run should have crossed several resets"
        assert bool((served.episode_box_size[[0, 2, 5]] == 1.0).all())
    finally:
        local.close()
        served.close()
    assert served.backend.process.returncode == 0, "close() ends the server cleanly"


def test_failed_request_is_reported_and_server_keeps_serving():
    backend = ServerBackend("mujoco", {"physics": {}, "num_threads": 1}, 2, ServerConfig())
    try:
        with pytest.raises(SimulatorServerError, match="failed in explode: ValueError: unknown request 'explode'"):
            backend._call({"op": "explode"})
        backend.step(np.zeros((2, 2, 3), dtype=np.float32))  # still serving
        assert np.isfinite(backend.state()["box_pos"]).all()
    finally:
        backend.close()


def test_startup_error_carries_the_servers_message():
    with pytest.raises(SimulatorServerError, match=r"(?s)failed to start: ValidationError.*substeps"):
        ServerBackend("mujoco", {"physics": {"substeps": 0}}, 2, ServerConfig())


def test_killed_server_raises_instead_of_hanging(tmp_path):
    env = MAPushVecEnv(_sim(log_dir=str(tmp_path)).with_num_envs(3), seed=0)
    actions = torch.zeros(3, 2, 3)
    env.step(actions)
    os.kill(env.backend.server_pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(SimulatorServerError, match=r"was killed by SIGKILL\.\nlast lines of its log"):
        env.step(actions)
    assert time.monotonic() - started < 10
    with pytest.raises(SimulatorServerError, match="SIGKILL"):  # every later call fails the same way, at once
        env.step(actions)
    env.close()


def test_server_that_dies_at_startup_shows_its_stderr(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'CUDA error: no device found' >&2\nexit 3\n")
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(SimulatorServerError, match=r"exited with status 3(.|\n)*CUDA error: no device found"):
        MAPushVecEnv(_sim(python=str(fake_python), log_dir=str(tmp_path)).with_num_envs(2))


def test_unrunnable_python_names_the_setting():
    with pytest.raises(SimulatorServerError, match=r"simulator.server.python: cannot run '/no/such/python'"):
        MAPushVecEnv(_sim(python="/no/such/python").with_num_envs(2))


@pytest.mark.parametrize("path", SERVER_SIDE_MODULES)
def test_server_side_module_is_python38_with_light_imports(path):
    source = (ROOT / path).read_text()
    tree = ast.parse(source, filename=path, feature_version=(3, 8))
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            top_level.add(node.module.split(".")[0])
    foreign = sorted(top_level - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY)
    assert not foreign, f"{path} imports {foreign} at module level; the server runs in Isaac Gym's bare 3.8"
