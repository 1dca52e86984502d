"""mapush-pbt's MAPush package. Layers, bottom up (imports point down only):

- `mapush_rllib.sim`: physics engines behind one contract (Ray-free; part runs in Isaac Gym's Python 3.8);
- `mapush_rllib.task`: the MAPush task over any engine: batched env, rewards, metrics, evaluation (Ray-free);
- this package's own modules: the RLlib adapter -- the multi-agent env and batched env runner, the PPO
  config, learner and algorithm, callbacks, checkpoints as policies, the `evaluate` command.

Nothing is imported here, so the Ray-free layers load without Ray.
"""
