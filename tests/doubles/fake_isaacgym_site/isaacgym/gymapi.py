"""TEST DOUBLE of isaacgym.gymapi."""
import os
import sys

# Test double: the code lives in tests/doubles/fake_mapush_isaacgym.py.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from fake_mapush_isaacgym import DOMAIN_SIM, SIM_PHYSX, AssetOptions, Quat, Transform, Vec3  # noqa: E402,F401
