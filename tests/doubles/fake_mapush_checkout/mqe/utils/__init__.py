"""TEST DOUBLE of mqe.utils: get_args."""
import os
import sys

# Test double: the code lives in tests/doubles/fake_mapush_isaacgym.py.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
from fake_mapush_isaacgym import get_args  # noqa: E402,F401
