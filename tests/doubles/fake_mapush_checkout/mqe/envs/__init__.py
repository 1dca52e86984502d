"""TEST DOUBLE of mqe.envs."""
