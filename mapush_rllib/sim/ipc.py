"""What the simulator server and its client share: the array layout in shared memory and the control messages.

Bulk data (commands, reset poses, box parameters, the state) lives in one `multiprocessing.shared_memory`
block as numpy arrays at fixed offsets, so a step copies no arrays through a pipe. The control channel is a
pair of OS pipes carrying small length-prefixed JSON messages: a request `{"op": ...}` from the client and one
reply `{"ok": true}` or `{"ok": false, "error": ...}` from the server per request.

Dtypes: inputs are float32 because the task layer produces float32 (so a hosted backend sees exactly the
values an embedded one would); env ids are int64; the state is float64, which holds a float32 or float64
backend's numbers exactly.

Valid Python 3.8, standard library + numpy only: the server runs this in Isaac Gym's interpreter.
"""

import json
import os
import struct
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mapush_rllib.sim.backend import OPTIONAL_STATE_FIELDS, STATE_FIELDS

ALIGN_BYTES = 64
HEADER = struct.Struct("!I")  # message length, big-endian uint32
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

ArraySpec = Tuple[str, Tuple[int, ...], str]  # name, shape, numpy dtype


def array_specs(num_envs: int, num_agents: int) -> List[ArraySpec]:
    """Every array in the shared block, in layout order. E = num_envs, A = num_agents."""
    E, A = num_envs, num_agents
    specs = [
        ("commands", (E, A, 3), "float32"),  # body-frame vx, vy, yaw rate
        ("reset_env_ids", (E,), "int64"),  # reset_envs uses the first n rows of the reset_* arrays
        ("reset_box_pose", (E, 4), "float32"),
        ("reset_agent_pose", (E, A, 3), "float32"),
        ("reset_agent_vel", (E, A, 3), "float32"),
        ("box_env_ids", (E,), "int64"),  # set_box uses the first n rows of the box_* arrays
        ("box_size", (E, 3), "float32"),
        ("box_mass", (E,), "float32"),
        ("box_friction", (E,), "float32"),
    ]
    sizes = {"E": E, "A": A}
    for name, dims in list(STATE_FIELDS.items()) + list(OPTIONAL_STATE_FIELDS.items()):
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in dims)
        specs.append(("state/" + name, shape, "float64"))
    return specs


def _offsets(specs: List[ArraySpec]) -> Tuple[List[int], int]:
    offsets, end = [], 0
    for _, shape, dtype in specs:
        start = -(-end // ALIGN_BYTES) * ALIGN_BYTES
        offsets.append(start)
        end = start + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return offsets, max(end, 1)


def shared_block_bytes(num_envs: int, num_agents: int) -> int:
    return _offsets(array_specs(num_envs, num_agents))[1]


def map_arrays(buffer: Any, num_envs: int, num_agents: int) -> Dict[str, np.ndarray]:
    """numpy views of every array in `buffer` (a SharedMemory's buf), keyed as in `array_specs`."""
    specs = array_specs(num_envs, num_agents)
    offsets, _ = _offsets(specs)
    return {
        name: np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
        for (name, shape, dtype), offset in zip(specs, offsets)
    }


def send_message(fd: int, message: Dict[str, Any]) -> None:
    """Write one length-prefixed JSON message to a pipe (blocking)."""
    body = json.dumps(message).encode("utf-8")
    data = memoryview(HEADER.pack(len(body)) + body)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _read_exactly(fd: int, count: int) -> Optional[bytes]:
    chunks, missing = [], count
    while missing:
        chunk = os.read(fd, missing)
        if not chunk:
            return None  # the other end closed the pipe
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> Optional[Dict[str, Any]]:
    """Read one message (blocking); None when the other process closed its end."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > MAX_MESSAGE_BYTES:
        raise ValueError("control message of {} bytes is larger than the limit".format(length))
    body = _read_exactly(fd, length)
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))
