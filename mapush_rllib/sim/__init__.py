"""Batched simulators of the MAPush go1push_mid task: one task layer (`vec_env`) over physics backends.

The names below are imported lazily: importing a submodule must not import the whole task layer, and the
simulator server (`mapush_rllib.sim.server`) runs in Isaac Gym's Python 3.8 without torch or pydantic.
"""

__all__ = ["MAPushVecEnv", "StepResult", "make_backend"]


def __getattr__(name: str):
    if name in __all__:
        from mapush_rllib.sim import vec_env

        return getattr(vec_env, name)
    raise AttributeError(name)
