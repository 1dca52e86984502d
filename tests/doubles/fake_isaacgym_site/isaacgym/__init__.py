"""TEST DOUBLE of Isaac Gym's Python package (see tests/doubles/fake_mapush_isaacgym.py)."""
