"""Batched simulators of the MAPush go1push_mid task: one task layer (`vec_env`) over physics backends."""

from mapush_rllib.sim.vec_env import MAPushVecEnv, StepResult, make_backend

__all__ = ["MAPushVecEnv", "StepResult", "make_backend"]
