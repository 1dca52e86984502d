"""Change a running Algorithm's reward scales, entropy coefficients and learning rates, and read them back.

`apply_live_settings` pushes new values into every env runner's simulators and every learner, without a restart;
a PBT exploit uses it to continue in the member's own process (`MAPushPPO.reset_config`). `read_live_settings`
reads the values those components actually hold (not the config): every result reports them, and
`verify_live_settings` compares them with the config after each restore.

Reward scales are also written into the env config of the runners and of the Algorithm, so envs that
RLlib rebuilds (a restarted runner, `make_env`) keep them.
"""

from __future__ import annotations

from typing import Any

from mapush_rllib.env import ENV_CONFIG_REWARDS, runner_vec_envs
from mapush_rllib.ray_compat import set_constant_entropy_coeff, set_constant_learning_rate
from mapush_rllib.task.config import AGENT_IDS, REWARD_TERMS, RewardConfig, scale_updates

ScalesUpdate = dict[str, float] | dict[str, dict[str, float]]
LIVE_OVERRIDES = "_mapush_live_overrides"  # Algorithm attribute: entropy/lr set by apply_live_settings


def apply_live_settings(
    algorithm: Any,
    *,
    reward_scales: ScalesUpdate | None = None,
    entropy_coeff: float | dict[str, float] | None = None,
    lr: float | dict[str, float] | None = None,
) -> None:
    """Set new values now; they apply from the next sampled step / gradient update.

    Args:
        algorithm: a built (MAPush)PPO Algorithm.
        reward_scales: {term: scale} for both agents, or {agent_id: {term: scale}}.
        entropy_coeff, lr: one value for every policy, or {module_id: value}.

    Raises ValueError naming the unknown module, agent or term (nothing is changed then).
    """
    module_ids = sorted(algorithm.config.policies)
    entropy = _per_module("entropy_coeff", entropy_coeff, module_ids, minimum=0.0)
    rates = _per_module("lr", lr, module_ids, minimum=None)
    if reward_scales is not None:
        table = _resolved_scales(algorithm.config.env_config[ENV_CONFIG_REWARDS], reward_scales)
        _store_scales(algorithm.config.env_config, table)

        def set_scales(env_runner: Any) -> None:
            _store_scales(env_runner.config.env_config, table)
            for vec_env in runner_vec_envs(env_runner):
                vec_env.set_reward_scales(table)

        algorithm.env_runner_group.foreach_env_runner(set_scales, local_env_runner=True)
    if entropy or rates:
        overrides = algorithm.__dict__.setdefault(LIVE_OVERRIDES, {})
        for key, values in (("entropy_coeff", entropy), ("lr", rates)):
            for module_id, value in values.items():
                overrides.setdefault(module_id, {})[key] = value

        def set_hyperparameters(learner: Any) -> None:
            for module_id, value in entropy.items():
                set_constant_entropy_coeff(learner, module_id, value)
            for module_id, value in rates.items():
                set_constant_learning_rate(learner, module_id, value)

        _learner_results(algorithm, set_hyperparameters)


def read_live_settings(algorithm: Any) -> dict[str, Any]:
    """{module_id: {entropy_coeff, lr}} from the (first) learner, and the reward scales the envs hold.

    `reward_scales` is {agent_id: {term: scale}} of the first env; `reward_scales_agree` is 1.0 when every
    env of every runner holds the same scales, else 0.0.
    """

    def learner_values(learner: Any) -> dict[str, dict[str, float]]:
        values = {}
        for module_id in learner.module.keys():
            optimizers = learner.get_optimizers_for_module(module_id)
            values[module_id] = {
                "entropy_coeff": float(learner.entropy_coeff_schedulers_per_module[module_id].get_current_value()),
                "lr": float(optimizers[0][1].param_groups[0]["lr"]) if optimizers else float("nan"),
            }
        return values

    out: dict[str, Any] = dict(_learner_results(algorithm, learner_values)[0])
    tables = read_env_reward_scales(algorithm)
    if tables:
        out["reward_scales"] = tables[0]
        out["reward_scales_agree"] = float(all(table == tables[0] for table in tables))
    return out


def read_env_reward_scales(algorithm: Any) -> list[dict[str, dict[str, float]]]:
    """The reward scales every simulator of every env runner holds, one {agent: {term: scale}} per simulator."""

    def scales(env_runner: Any) -> list[dict[str, dict[str, float]]]:
        return [vec_env.reward_scales for vec_env in runner_vec_envs(env_runner)]

    per_runner = algorithm.env_runner_group.foreach_env_runner(scales, local_env_runner=True)
    return [table for tables in per_runner for table in tables]


def _learner_results(algorithm: Any, func: Any) -> list[Any]:
    """func(learner) on every learner; raises the first error."""
    return [call.get() for call in algorithm.learner_group.foreach_learner(func)]


def _per_module(name: str, value: Any, module_ids: list[str], minimum: float | None) -> dict[str, float]:
    if value is None:
        return {}
    values = value if isinstance(value, dict) else dict.fromkeys(module_ids, value)
    unknown = sorted(set(values) - set(module_ids))
    if unknown:
        raise ValueError(f"{name}: unknown policy id(s) {unknown}; the policies are {module_ids}")
    for module_id, number in values.items():
        if not isinstance(number, (int, float)) or (minimum is not None and number < minimum) or (
            minimum is None and number <= 0
        ):
            raise ValueError(f"{name}.{module_id}: invalid value {number!r}")
    return {module_id: float(number) for module_id, number in values.items()}


def _resolved_scales(rewards: dict, update: ScalesUpdate) -> dict[str, dict[str, float]]:
    """The full {agent: {term: scale}} table after applying `update` to the env config's reward section."""
    table = {
        agent: dict(zip(REWARD_TERMS, row, strict=True))
        for agent, row in zip(AGENT_IDS, RewardConfig.model_validate(rewards, strict=False).scale_table(), strict=True)
    }
    for agent, term, value in scale_updates(update):
        table[agent][term] = value
    return table


def reward_scale_table(env_config: dict) -> dict[str, dict[str, float]]:
    """{agent: {term: scale}} of an env config's reward section."""
    table = RewardConfig.model_validate(env_config[ENV_CONFIG_REWARDS], strict=False).scale_table()
    return {agent: dict(zip(REWARD_TERMS, row, strict=True)) for agent, row in zip(AGENT_IDS, table, strict=True)}


def _store_scales(env_config: dict, table: dict[str, dict[str, float]]) -> None:
    """Write the full scale table into an env config's reward section (as per-agent scales)."""
    env_config[ENV_CONFIG_REWARDS] = {**env_config[ENV_CONFIG_REWARDS], "per_agent_scales": table}


class LiveSettingsMismatch(RuntimeError):
    """The values the learners or envs run with differ from the trial's config (e.g. silently reverted)."""


def expected_settings(algorithm: Any) -> dict[str, Any]:
    """What every learner and env must hold: {module: {entropy_coeff, lr}, reward_scales}.

    The config's values, except those changed since by `apply_live_settings` (which holds them on the
    Algorithm; reward scales it writes into the env config itself).
    """
    expected: dict[str, Any] = {}
    overrides = getattr(algorithm, LIVE_OVERRIDES, {})
    config = algorithm.config.copy(copy_frozen=False)  # RLlib builds per-module configs by updating a copy
    for module_id in sorted(config.policies):
        module_config = config.get_config_for_module(module_id)
        expected[module_id] = {"entropy_coeff": module_config.entropy_coeff, "lr": module_config.lr,
                               **overrides.get(module_id, {})}
    expected["reward_scales"] = reward_scale_table(algorithm.config.env_config)
    return expected


def verify_live_settings(algorithm: Any, *, rel_tol: float = 1e-6) -> None:
    """Raise LiveSettingsMismatch naming every live entropy coefficient, learning rate or reward scale that
    differs from the config (Ray has had bugs that silently revert perturbed values: ray#62173, ray#54755)."""
    expected = expected_settings(algorithm)
    live = read_live_settings(algorithm)
    problems = []

    def compare(name: str, want: Any, have: Any) -> None:
        if not isinstance(want, (int, float)):
            return  # a schedule, not a constant: nothing to compare against
        if not (isinstance(have, (int, float)) and abs(have - want) <= rel_tol * max(abs(want), 1e-12)):
            problems.append(f"{name}: live {have!r}, config {want!r}")

    for module_id, values in expected.items():
        if module_id == "reward_scales":
            continue
        for key, want in values.items():
            compare(f"{module_id}.{key}", want, live.get(module_id, {}).get(key))
    for index, table in enumerate(read_env_reward_scales(algorithm)):
        for agent, terms in expected["reward_scales"].items():
            for term, want in terms.items():
                compare(f"env {index} reward_scales.{agent}.{term}", want, table[agent][term])
    if problems:
        raise LiveSettingsMismatch(
            "live settings differ from the trial config after restore:\n  " + "\n  ".join(problems)
        )
