"""The simulator server: one process that owns one physics backend and serves it to the task layer.

Why a process: Isaac Gym Preview 4 runs only on Python <= 3.8 while Ray >= 2.11 needs >= 3.9, and Isaac Gym
allows one simulation per process. So the backend runs here, in whatever interpreter hosts it, and
`mapush_rllib.sim.client.ServerBackend` stands in for it on the RLlib side. The client starts this module as

    <python> -m mapush_rllib.sim.server --fd-in R --fd-out W

with two inherited pipe ends as the control channel and the arrays in shared memory (`ipc.py`). The first
request names the shared block, the backend and its options; then every request is one backend call:

    {"op": "step"}              backend.step(commands)
    {"op": "reset_envs", "n"}   backend.reset_envs(first n rows of the reset_* arrays)
    {"op": "set_box", "n"}      backend.set_box(first n rows of the box_* arrays)
    {"op": "close"}             close the backend and exit

After each call the server copies `backend.state()` into the shared state arrays and replies. A failing call
replies with the error and the server keeps serving; a closed control pipe (the client died) ends the server.

Valid Python 3.8, standard library + numpy + the hosted backend only.
"""

import argparse
import os
import sys
import traceback
from multiprocessing import resource_tracker, shared_memory
from typing import Any, Dict

import numpy as np

from mapush_rllib.sim import ipc
from mapush_rllib.sim.backend import OPTIONAL_STATE_FIELDS, STATE_FIELDS, PhysicsBackend

HOSTED_BACKENDS = ("mujoco", "isaacgym")


def build_backend(name: str, num_envs: int, options: Dict[str, Any]) -> PhysicsBackend:
    """The backend `name` for `num_envs` envs. Imports happen here, so the server needs only what it hosts."""
    if name == "mujoco":
        from mapush_rllib.sim.config import PhysicsConfig
        from mapush_rllib.sim.mujoco_backend import MujocoBackend

        physics = PhysicsConfig.model_validate(options.get("physics", {}))
        return MujocoBackend(num_envs, physics, num_threads=int(options.get("num_threads", 0)))
    if name == "isaacgym":
        from mapush_rllib.sim.isaacgym_backend import IsaacGymBackend

        return IsaacGymBackend(num_envs, options)
    raise ValueError("unknown hosted backend {!r}; choose one of {}".format(name, HOSTED_BACKENDS))


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class HostedBackend:
    """A backend bound to the shared arrays: runs one request and publishes the resulting state."""

    def __init__(self, backend: PhysicsBackend, arrays: Dict[str, np.ndarray]) -> None:
        self.backend = backend
        self.arrays = arrays
        self.state_fields = []  # type: list

    def publish_state(self) -> None:
        state = self.backend.state()
        missing = sorted(set(STATE_FIELDS) - set(state))
        if missing:
            raise KeyError("backend state() lacks the field(s) {}".format(missing))
        fields = [name for name in list(STATE_FIELDS) + list(OPTIONAL_STATE_FIELDS) if name in state]
        for name in fields:
            np.copyto(self.arrays["state/" + name], _as_numpy(state[name]), casting="unsafe")
        self.state_fields = fields

    def handle(self, request: Dict[str, Any]) -> None:
        op, a = request.get("op"), self.arrays
        if op == "step":
            self.backend.step(a["commands"])
        elif op == "reset_envs":
            n = int(request["n"])
            self.backend.reset_envs(
                a["reset_env_ids"][:n], a["reset_box_pose"][:n], a["reset_agent_pose"][:n], a["reset_agent_vel"][:n]
            )
        elif op == "set_box":
            n = int(request["n"])
            self.backend.set_box(a["box_env_ids"][:n], a["box_size"][:n], a["box_mass"][:n], a["box_friction"][:n])
        else:
            raise ValueError("unknown request {!r}".format(op))
        self.publish_state()


def _error_reply(error: BaseException) -> Dict[str, Any]:
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()
    return {"ok": False, "error": "{}: {}".format(type(error).__name__, error), "traceback": traceback.format_exc()}


def _attach(name: str) -> shared_memory.SharedMemory:
    block = shared_memory.SharedMemory(name=name)
    # The client owns the block and unlinks it; without this, this process's resource tracker would unlink it
    # too when the server exits (bpo-39959).
    resource_tracker.unregister(block._name, "shared_memory")  # type: ignore[attr-defined]
    return block


def serve(fd_in: int, fd_out: int) -> int:
    """Run the server on an open control channel until the client closes it. Returns the exit status."""
    start = ipc.read_message(fd_in)
    if start is None or start.get("op") != "start":
        print("simulator server: expected a start request, got {!r}".format(start), file=sys.stderr)
        return 2
    num_envs, num_agents = int(start["num_envs"]), int(start["num_agents"])
    block = _attach(start["shm"])
    arrays = ipc.map_arrays(block.buf, num_envs, num_agents)
    hosted = None
    try:
        try:
            backend = build_backend(start["backend"], num_envs, start.get("options", {}))
            hosted = HostedBackend(backend, arrays)
            hosted.publish_state()
        except Exception as error:  # noqa: BLE001 -- every failure goes back to the client
            ipc.send_message(fd_out, _error_reply(error))
            return 1
        ipc.send_message(
            fd_out,
            {
                "ok": True,
                "state_fields": hosted.state_fields,
                "python": sys.version.split()[0],
                "python_executable": sys.executable,
                "pid": os.getpid(),
            },
        )
        while True:
            request = ipc.read_message(fd_in)
            if request is None:  # the client is gone
                return 0
            if request.get("op") == "close":
                ipc.send_message(fd_out, {"ok": True})
                return 0
            try:
                hosted.handle(request)
                reply = {"ok": True}  # type: Dict[str, Any]
            except Exception as error:  # noqa: BLE001
                reply = _error_reply(error)
            ipc.send_message(fd_out, reply)
    finally:
        if hosted is not None:
            hosted.backend.close()
            hosted.arrays = {}
        arrays = {}
        try:
            block.close()
        except BufferError:  # a view is still referenced somewhere; the OS unmaps it at exit
            pass


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fd-in", type=int, required=True, help="pipe the client writes requests to")
    parser.add_argument("--fd-out", type=int, required=True, help="pipe the server writes replies to")
    args = parser.parse_args(argv)
    sys.exit(serve(args.fd_in, args.fd_out))


if __name__ == "__main__":
    main()
