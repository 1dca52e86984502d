"""The MAPush `go1push_mid` task over any physics engine, without Ray: what makes the physics a pushing task.

`vec_env.MAPushVecEnv` is the batched env (num_envs x 2 agents, torch tensors): reset distributions from per-env
task parameters (`task_params`, drawn with the counter-based `rng`), observations (`observations`), termination,
the reward terms (`rewards`: MAPush's seven, own_push and joint_push) and per-episode metrics (`metrics`).
Beside it: the task and reward config (`config`), the calculator evaluation protocol (`calculator`), a scripted
pushing controller and a random policy (`scripted`), and rollout animations (`render`). Built on `mapush_rllib.sim`;
the curriculum and the RLlib adapter build on this. The facts it implements, with their upstream sources:
docs/mapush-task.md.
"""
