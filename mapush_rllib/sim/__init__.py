"""Batched simulators of the MAPush go1push_mid task: one task layer (`vec_env`) over physics backends."""


def __getattr__(name: str):  # lazy, so that importing a submodule does not import the whole task layer
    if name in ("MAPushVecEnv", "StepResult", "make_backend"):
        from mapush_rllib.sim import vec_env

        return getattr(vec_env, name)
    raise AttributeError(name)
