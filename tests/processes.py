"""Helpers for tests that run training in a subprocess of its own session (`start_new_session=True`)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def session_processes(session: int) -> list[int]:
    """Live (not zombie) processes of a session. Ray's trial actors run in process groups of their own within
    the driver's session, so the session, not the driver's group, holds every process of a run."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _, _, sid = stat[stat.rindex(")") + 2:].split()[:4]  # after "(comm)": state ppid pgrp session
        if int(sid) == session and state != "Z":
            found.append(int(entry))
    return found


def kill_group(process: subprocess.Popen, timeout_s: float = 60) -> None:
    """SIGKILL every process of the run's session (the driver, Ray's helpers, the trial actors) and return once
    none is left: a trial actor that outlived the driver could otherwise still finish writing a checkpoint."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while remaining := session_processes(process.pid):
        for pid in remaining:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert time.monotonic() < deadline, f"processes of the killed run still alive: {remaining}"
        time.sleep(0.02)
