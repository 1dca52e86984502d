"""Physics engines behind one contract: N parallel worlds of a box and two robots, stepped in one call.

`backend.py` is the contract, `factory.make_backend` picks an engine by `simulator.backend`; the engines are
embedded MuJoCo (`mujoco_backend`, scene in `mujoco_scene`), MuJoCo Warp on a GPU (`warp_backend`) and Isaac
Gym (`isaacgym_backend`), the latter hosted in a separate process by the simulator server (`server`, `client`,
`ipc`). `config.py` is the simulator's config section; `schema.py` the base of every config schema.
An engine knows no rewards, targets or episodes: that is the task layer above (`mapush_rllib.task`).

Nothing is imported here: the simulator server runs this package in Isaac Gym's Python 3.8, without torch
or pydantic.
"""
