"""Helpers for tests that run training in a subprocess of its own process group (Ray's helpers join it)."""

from __future__ import annotations

import os
import signal
import subprocess


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process's whole group: the driver and any Ray helper that outlived it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=60)
