"""TEST DOUBLE of MAPush's mqe package (see tests/doubles/fake_mapush_isaacgym.py)."""
