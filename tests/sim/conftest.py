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
PY38_VENV = ROOT / ".venv-py38"  # made by find_python38() on first use
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
    """A Python 3.8 interpreter with numpy: $MAPUSH_TEST_PY38, else <repo>/.venv-py38/bin/python, which is
    created on first use (venv + pip install numpy) when the machine has any Python 3.8."""
    candidates = [os.environ.get("MAPUSH_TEST_PY38", ""), str(PY38_VENV / "bin" / "python")]
    for candidate in filter(None, candidates):
        if _is_python38_with_numpy(candidate):
            return candidate
    base = python38_binary()
    if base is None:
        return None
    subprocess.run([base, "-m", "venv", "--clear", str(PY38_VENV)], check=True, capture_output=True, timeout=300)
    install = subprocess.run([str(PY38_VENV / "bin" / "pip"), "install", "-q", "numpy"], capture_output=True,
                             text=True, timeout=600)
    if install.returncode != 0:
        raise RuntimeError(f"could not install numpy for Python 3.8 ({PY38_HINT}):\n{install.stderr[-2000:]}")
    candidate = str(PY38_VENV / "bin" / "python")
    return candidate if _is_python38_with_numpy(candidate) else None


def _is_python38_with_numpy(candidate: str) -> bool:
    probe = "import sys, numpy; sys.exit(0 if sys.version_info[:2] == (3, 8) else 1)"
    try:
        return subprocess.run([candidate, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False
