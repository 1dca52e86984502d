"""Where the adapter's numbers live in a training result: one name for each.

RLlib's result is a nested dict; Tune, progress.csv and TensorBoard join a path with '/', so every key here is
such a path and `result_value` reads it from either form (nested, or flat as in progress.csv rows).
"""

from __future__ import annotations

from typing import Any

#: Env steps sampled so far by every env runner together.
ENV_STEPS = "env_runners/num_env_steps_sampled_lifetime"
#: The env runners' rolling task metrics (`mapush_rllib.episode_window`) sit under this key of their metrics.
TASK_METRICS_KEY = "mapush"
TASK_METRICS = f"env_runners/{TASK_METRICS_KEY}"
SUCCESS_RATE = f"{TASK_METRICS}/success_rate"
FREELOADING_INDEX = f"{TASK_METRICS}/freeloading_index"
TASK_PROGRESS = f"{TASK_METRICS}/task_progress"
WINDOW_EPISODES = f"{TASK_METRICS}/window_episodes"
#: The member's own evaluation (`mapush_rllib.evaluation`): what decisions and claims use.
EVAL = "eval"
EVAL_SUCCESS_RATE = f"{EVAL}/success_rate"
EVAL_FINISH_TIME = f"{EVAL}/finish_time_s"
EVAL_TASK_PROGRESS = f"{EVAL}/task_progress"
EVAL_FREELOADING_INDEX = f"{EVAL}/freeloading_index"
EVAL_CONTRIBUTION_BALANCE = f"{EVAL}/contribution_balance"
EVAL_EPISODES = f"{EVAL}/episodes"
EVAL_TIME = f"{EVAL}/time_s"  # what the evaluation cost the member (asynchronous: handing over and waiting)
EVAL_PROTOCOL_TIME = f"{EVAL}/protocol_time_s"  # how long the protocol itself ran, wherever it ran
EVAL_ITERATION = f"{EVAL}/iteration"  # the iteration the latest evaluation was reported in (every result carries it)
#: The iteration whose policies it judged: EVAL_ITERATION, or lead_iterations before it when asynchronous.
EVAL_WEIGHTS_ITERATION = f"{EVAL}/weights_iteration"
#: Env steps sampled in this iteration by every env runner together.
ENV_STEPS_THIS_ITERATION = "env_runners/num_env_steps_sampled"
#: The values the learners and envs hold (`mapush_rllib.live_settings.read_live_settings`).
LIVE_SETTINGS = "live_settings"


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a/b": x} -> {"a": {"b": x}}: results are nested, and Tune joins the keys with '/'."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def result_value(result: dict, key: str, default: Any = None) -> Any:
    """`result[a][b][c]` for key "a/b/c", or `result["a/b/c"]` in a flat row; `default` where it is missing."""
    if key in result:
        return result[key]
    node: Any = result
    for part in key.split("/"):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def ran_evaluation(result: dict) -> bool:
    """Whether this result's iteration ran the evaluation it carries (every result carries the latest one)."""
    iteration = result_value(result, "training_iteration")
    return iteration is not None and result_value(result, EVAL_ITERATION) == iteration


def evaluated_iteration(result: dict) -> int | None:
    """The iteration whose policies this result's own evaluation judged; None if the result ran none. Results
    written before asynchronous evaluation existed have no EVAL_WEIGHTS_ITERATION: their own iteration."""
    if not ran_evaluation(result):
        return None
    weights = result_value(result, EVAL_WEIGHTS_ITERATION)
    if not isinstance(weights, (int, float)) or weights != weights:  # absent, or NaN
        weights = result_value(result, "training_iteration")
    return int(weights)
