"""Fixtures for the simulator-server and Isaac Gym backend tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOUBLES = ROOT / "tests" / "doubles"
FAKE_ISAACGYM_SITE = DOUBLES / "fake_isaacgym_site"  # test double of Isaac Gym's package
FAKE_MAPUSH_CHECKOUT = DOUBLES / "fake_mapush_checkout"  # test double of a MAPush checkout
PY38_HINT = "python3.8 -m venv .venv-py38 && .venv-py38/bin/pip install numpy (or set MAPUSH_TEST_PY38)"


@pytest.fixture
def isaacgym_double(monkeypatch):
    """Make the Isaac Gym / MAPush test double importable in this process; undo it afterwards."""
    monkeypatch.syspath_prepend(str(DOUBLES))
    monkeypatch.syspath_prepend(str(FAKE_ISAACGYM_SITE))
    import fake_mapush_isaacgym

    fake_mapush_isaacgym.reset_registry()
    yield fake_mapush_isaacgym
    fake_mapush_isaacgym.reset_registry()
    for name in [n for n in sys.modules if n.split(".")[0] in ("isaacgym", "mqe")]:
        del sys.modules[name]
    while str(FAKE_MAPUSH_CHECKOUT) in sys.path:  # the backend puts mapush_path on sys.path
        sys.path.remove(str(FAKE_MAPUSH_CHECKOUT))


def python38_binary() -> str | None:
    """Any Python 3.8 interpreter on this machine (pyenv's shim may exist without one selected)."""
    found = sorted(Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))
    for candidate in [shutil.which("python3.8")] + [str(p) for p in found]:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def find_python38() -> str | None:
    """A Python 3.8 interpreter with numpy: $MAPUSH_TEST_PY38, else <repo>/.venv-py38/bin/python."""
    candidates = [os.environ.get("MAPUSH_TEST_PY38", ""), str(ROOT / ".venv-py38" / "bin" / "python")]
    for candidate in filter(None, candidates):
        probe = "import sys, numpy; sys.exit(0 if sys.version_info[:2] == (3, 8) else 1)"
        try:
            if subprocess.run([candidate, "-c", probe], capture_output=True, timeout=60).returncode == 0:
                return candidate
        except OSError:
            continue
    return None
