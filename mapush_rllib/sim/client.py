"""The task layer's side of the simulator server: a `PhysicsBackend` whose every call runs in a server process.

`connect_backend` starts `python -m mapush_rllib.sim.server` in the configured interpreter (Isaac Gym's
Python 3.8 for `simulator.backend: isaacgym`), hands it a shared-memory block and two pipes (`ipc.py`), and
returns a `ServerBackend`. `MAPushVecEnv` uses it like any other backend, so resets, observations, rewards,
curriculum parameters and metrics are computed by the same code on every simulator.

Failure handling: every wait on the server polls its liveness, so a crashed or killed server surfaces as a
`SimulatorServerError` carrying its exit status and the tail of its log within a second, never as a hang.
The error propagates out of `env.step`, which fails the Tune trial, and Tune's failure handling restores it.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from mapush_rllib.sim import ipc
from mapush_rllib.sim.backend import PhysicsBackend
from mapush_rllib.sim.config import NUM_AGENTS, ServerConfig, SimConfig

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../mapush_rllib
LOG_TAIL_LINES = 25
POLL_INTERVAL_S = 0.25  # how often a wait checks that the server process is still alive
CLOSE_TIMEOUT_S = 30.0


class SimulatorServerError(RuntimeError):
    """The simulator server could not start, failed a request, or died. The message carries its log tail."""


def server_request(sim: SimConfig) -> tuple[str, dict[str, Any]]:
    """(hosted backend name, its JSON options) for `sim`."""
    hosted = "isaacgym" if sim.backend == "isaacgym" else sim.server.hosted_backend
    if hosted == "mujoco":
        return hosted, {"physics": sim.physics.model_dump(mode="json"), "num_threads": sim.num_threads}
    isaacgym = sim.server.isaacgym
    return hosted, {
        **isaacgym.model_dump(mode="json"),
        "box_variants": [{"size_m": v.size_m, "mass_kg": v.resolved_mass_kg()} for v in isaacgym.box_variants],
        "policy_dt_s": sim.physics.policy_dt_s,
        "box_height_m": sim.physics.box_height_m,
    }


def connect_backend(sim: SimConfig, num_envs: int) -> ServerBackend:
    """Start a simulator server for `sim` with `num_envs` envs and return the backend that talks to it."""
    hosted, options = server_request(sim)
    return ServerBackend(hosted, options, num_envs, sim.server)


class ServerBackend(PhysicsBackend):
    """A `PhysicsBackend` proxy: arrays go through shared memory, calls through the control pipes."""

    def __init__(self, hosted: str, options: dict[str, Any], num_envs: int, server: ServerConfig) -> None:
        self.num_envs, self.num_agents, self.hosted = num_envs, NUM_AGENTS, hosted
        self.config = server
        self.python = server.python or sys.executable
        self._dead: str | None = None
        cwd = None
        if hosted == "isaacgym":
            cwd = options.get("mapush_path", "")
            if not Path(cwd).is_dir():
                raise SimulatorServerError(
                    f"simulator.server.isaacgym.mapush_path: {cwd!r} is not a folder; clone MAPush "
                    "(git clone https://github.com/collaborative-mapush/MAPush) and give the path of the checkout"
                )
            cwd = str(Path(cwd).resolve())  # MAPush loads its assets relative to the checkout
            options = {**options, "mapush_path": cwd}

        self.shm = shared_memory.SharedMemory(create=True, size=ipc.shared_block_bytes(num_envs, NUM_AGENTS))
        self.arrays = ipc.map_arrays(self.shm.buf, num_envs, NUM_AGENTS)
        self._temporary_run_dir = not server.log_dir
        self.run_dir = Path(server.log_dir or tempfile.mkdtemp(prefix="mapush-sim-server-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / f"simulator-server-{hosted}-{os.getpid()}-{id(self):x}.log"
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        command = [
            self.python, "-u", "-m", "mapush_rllib.sim.server", "--fd-in", str(request_r), "--fd-out", str(reply_w)
        ]
        try:
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    command, pass_fds=(request_r, reply_w), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, env=self._environment(), cwd=cwd,
                )
        except OSError as error:
            for fd in (request_r, request_w, reply_r, reply_w):
                os.close(fd)
            _release_block(self.shm)
            raise SimulatorServerError(
                f"simulator.server.python: cannot run {self.python!r} ({error}); give the path of a Python "
                "interpreter (for isaacgym: the one Isaac Gym is installed in)"
            ) from None
        os.close(request_r)
        os.close(reply_w)
        self._request_fd, self._reply_fd = request_w, reply_r
        self._finalizer = weakref.finalize(self, _shutdown, self.process, self.shm, (request_w, reply_r))
        start = {"op": "start", "shm": self.shm.name, "num_envs": num_envs, "num_agents": NUM_AGENTS,
                 "backend": hosted, "options": options}
        reply = self._call(start, server.startup_timeout_s)
        self.state_fields: list[str] = reply["state_fields"]
        self.server_python: str = reply["python"]
        self.server_pid: int = reply["pid"]

    # ---------------------------------------------------------------------------------- PhysicsBackend

    def set_box(self, env_ids: Any, size_m: Any, mass_kg: Any, friction: Any) -> None:
        n = self._put("box", env_ids, size=size_m, mass=mass_kg, friction=friction)
        self._call({"op": "set_box", "n": n})

    def reset_envs(self, env_ids: Any, box_pose: Any, agent_pose: Any, agent_vel: Any) -> None:
        n = self._put("reset", env_ids, box_pose=box_pose, agent_pose=agent_pose, agent_vel=agent_vel)
        if n:
            self._call({"op": "reset_envs", "n": n})

    def step(self, commands: Any) -> None:
        self.arrays["commands"][...] = np.asarray(commands).reshape(self.num_envs, self.num_agents, 3)
        self._call({"op": "step"})

    def state(self) -> dict[str, np.ndarray]:
        """Views of the shared state arrays as the server last wrote them (float64)."""
        return {name: self.arrays["state/" + name] for name in self.state_fields}

    def close(self) -> None:
        if not self._finalizer.alive:
            return
        if self._dead is None and self.process.poll() is None:
            try:
                self._call({"op": "close"}, CLOSE_TIMEOUT_S)
                self.process.wait(CLOSE_TIMEOUT_S)
            except (SimulatorServerError, subprocess.TimeoutExpired):
                pass
        self.arrays = {}
        self._finalizer()
        if self._temporary_run_dir and self._dead is None and self.process.returncode == 0:
            shutil.rmtree(self.run_dir, ignore_errors=True)  # a clean run leaves nothing behind

    # --------------------------------------------------------------------------------------- internals

    def _environment(self) -> dict[str, str]:
        """The server's environment: ours, plus `server.env`, with only this package put on its PYTHONPATH.

        The package goes in through a folder holding nothing but a link to it, so a foreign interpreter (Isaac
        Gym's 3.8) never sees this interpreter's site-packages even when the project is pip-installed there.
        """
        path_dir = self.run_dir / "pythonpath"
        path_dir.mkdir(exist_ok=True)
        link = path_dir / "mapush_rllib"
        if not link.exists():
            link.symlink_to(PACKAGE_DIR, target_is_directory=True)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        extra = dict(self.config.env)
        paths = [str(path_dir)] + [p for p in [extra.pop("PYTHONPATH", "")] if p]
        env.update(extra)
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _put(self, prefix: str, env_ids: Any, **values: Any) -> int:
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        n = ids.size
        if n > self.num_envs:
            raise ValueError(f"{n} env ids for a batch of {self.num_envs} envs")
        self.arrays[f"{prefix}_env_ids"][:n] = ids
        for name, value in values.items():
            target = self.arrays[f"{prefix}_{name}"]
            target[:n] = np.asarray(value).reshape((n,) + target.shape[1:])
        return n

    def _call(self, request: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        if self._dead is not None:
            raise SimulatorServerError(self._dead)
        try:
            ipc.send_message(self._request_fd, request)
        except (BrokenPipeError, OSError):
            raise self._died() from None
        reply = self._wait_reply(request["op"], timeout_s or self.config.reply_timeout_s)
        if not reply.get("ok"):
            what = "failed to start" if request["op"] == "start" else f"failed in {request['op']}"
            raise SimulatorServerError(
                f"simulator server ({self.hosted}, {self.python}) {what}: {reply.get('error')}\n"
                f"server log: {self.log_path}"
            )
        return reply

    def _wait_reply(self, op: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.process.kill()
                self._dead = (
                    f"simulator server ({self.hosted}) gave no reply to {op!r} within {timeout_s:g} s "
                    f"(simulator.server.{'startup' if op == 'start' else 'reply'}_timeout_s) and was killed.\n"
                    + self._log_tail()
                )
                raise SimulatorServerError(self._dead)
            ready, _, _ = select.select([self._reply_fd], [], [], min(remaining, POLL_INTERVAL_S))
            if ready:
                reply = ipc.read_message(self._reply_fd)
                if reply is None:
                    raise self._died()
                return reply
            if self.process.poll() is not None:
                raise self._died()

    def _died(self) -> SimulatorServerError:
        try:
            status = self.process.wait(CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # it closed the pipe but lingers
            self.process.kill()
            status = self.process.wait()
        how = f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}"
        server = f"simulator server ({self.hosted}, pid {self.process.pid}, {self.python})"
        self._dead = f"{server} {how}.\n" + self._log_tail()
        return SimulatorServerError(self._dead)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            lines = []
        body = "\n".join("  | " + line for line in lines) if lines else "  | (empty)"
        return f"last lines of its log {self.log_path}:\n{body}"


def _release_block(block: shared_memory.SharedMemory) -> None:
    try:
        block.close()
    except BufferError:  # a caller still holds a view; the mapping goes when it does
        pass
    try:
        block.unlink()
    except FileNotFoundError:
        pass


def _shutdown(process: subprocess.Popen, block: shared_memory.SharedMemory, fds: tuple[int, ...]) -> None:
    """Stop the server if it still runs and free the pipes and the shared block (also at garbage collection)."""
    for fd in fds:
        try:
            os.close(fd)  # the server reads EOF and exits
        except OSError:
            pass
    try:
        process.wait(CLOSE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _release_block(block)
