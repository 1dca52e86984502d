"""TEST DOUBLE of isaacgym.gymtorch."""
import os
import sys

# Test double: the code lives in tests/doubles/fake_mapush_isaacgym.py.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from fake_mapush_isaacgym import unwrap_tensor, wrap_tensor  # noqa: E402,F401
