"""TEST DOUBLE of mqe.envs.utils: ENV_DICT and make_mqe_env."""
import os
import sys

# Test double: the code lives in tests/doubles/fake_mapush_isaacgym.py.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
from fake_mapush_isaacgym import ENV_DICT, make_mqe_env  # noqa: E402,F401
