"""Batched simulators of the MAPush go1push_mid task: one task layer (`vec_env`) over physics backends.

The names below are imported lazily: the simulator server (`mapush_rllib.sim.server`) runs in Isaac Gym's
Python 3.8 without torch or pydantic, and importing this package must not pull in the task layer there.
"""

__all__ = ["MAPushVecEnv", "StepResult", "make_backend"]


def __getattr__(name):
    if name in __all__:
        from mapush_rllib.sim import vec_env

        return getattr(vec_env, name)
    raise AttributeError("module 'mapush_rllib.sim' has no attribute " + repr(name))
