"""The `pbt:` section of an experiment: population size, schedule, what is mutated, how members are ranked.

Mutations are written as dotted paths into the experiment file itself, so what a user reads in the YAML is
what is mutated:

    pbt:
      reward_scales: per_agent        # every MAPush reward-term scale, for each agent separately
      entropy: per_policy             # each policy's entropy coefficient
      mutations:                      # anything else, with its bounds
        training.lr: [1.0e-4, 2.0e-3]
        rewards.scales.own_push: [0.02, 0.08]   # a value mutated above: these bounds instead of the defaults

`member_experiment` turns those shorthands into explicit values in the experiment (e.g. each agent's scale
becomes an entry of `rewards.per_agent_scales`). Users, logs and reports see only these experiment paths;
`mapush_rllib.training.config_dict_path` translates them, once, where Tune takes over (`population.members`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mapush_rllib.sim.schema import Range, StrictModel, check_range
from mapush_rllib.task.config import AGENT_IDS, REWARD_TERMS
from population.explore import Mutation, get_path


class ScoreConfig(StrictModel):
    """Weights of the member score (`population/exploit.py`): success, curriculum and task progress, freeloading,
    contribution balance."""

    level_weight: float = Field(0.5, ge=0, description="weight of mean curriculum level / top level")
    freeloading_weight: float = Field(
        0.25, ge=0, le=1, description="share of the achievement a fully freeloading team (index 1) loses"
    )
    progress_weight: float = Field(0.1, ge=0, description="weight of task progress (how far boxes got)")
    contribution_weight: float = Field(
        0.25, ge=0, le=1, description="share of the achievement a team with one useless agent (balance 0) loses"
    )


class PBTConfig(StrictModel):
    """Population-based training over reward scales and entropy (Tune PBT with DexPBT's replacement rule)."""

    population_size: int = Field(4, ge=2, description="members trained side by side")
    perturbation_interval: int = Field(10, gt=0, description="iterations between a member's exploit decisions")
    burn_in: int = Field(10, ge=0, description="iterations before any member can be replaced")
    synchronous: bool = Field(
        False, description="true: every member decides at the same iteration, on that iteration's scores (false, "
        "Tune's default: each decides on arrival against the others' scores from their last decision)"
    )
    quantile_fraction: float = Field(0.25, gt=0, le=0.5, description="bottom share that may be replaced")
    resample_probability: float = Field(0.25, ge=0, le=1, description="chance a value is redrawn, not perturbed")
    perturbation_factors: Range = Field((1.1, 1.5), description="x/÷ a factor drawn log-uniformly from this range")
    replace_threshold_std: float = Field(0.5, ge=0, description="gap to the leader > this x population std ...")
    replace_threshold_abs: float = Field(0.05, ge=0, description="... and > this x |leader score|")
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    reward_scales: Literal["per_agent", "shared", "none"] = Field(
        "per_agent", description="mutate every reward-term scale per agent, once for both, or not"
    )
    shared_reward_terms: list[Literal[REWARD_TERMS]] = Field(
        ["own_push"], description="terms that reward_scales: per_agent still mutates once for both agents: own_push "
        "pays each robot for its own push, and mutated per agent PBT raised the pusher's pay (benchmarks/RESULTS.md)"
    )
    reward_scale_range: float = Field(4.0, gt=1, description="scale bounds: default x/÷ this factor")
    entropy: Literal["per_policy", "shared", "none"] = Field("per_policy", description="mutate entropy coefficients")
    entropy_coeff_range: Range = Field((1e-4, 0.1), description="bounds of mutated entropy coefficients")
    mutations: dict[str, Range] = Field(
        default_factory=dict,
        description="more dotted paths and their [low, high]; for a value already mutated, its bounds",
    )
    initial: Literal["perturbed", "identical"] = Field(
        "perturbed", description="members other than member 0 start from a perturbed copy of the config"
    )

    @model_validator(mode="after")
    def _ranges(self) -> PBTConfig:
        if len(set(self.shared_reward_terms)) != len(self.shared_reward_terms):
            raise ValueError(f"shared_reward_terms: {self.shared_reward_terms} names a term twice")
        check_range("perturbation_factors", self.perturbation_factors, minimum=1.0)
        check_range("entropy_coeff_range", self.entropy_coeff_range)
        if self.entropy_coeff_range[0] <= 0:
            raise ValueError("entropy_coeff_range: low must be positive (values are mutated in log space)")
        return self


def member_experiment(experiment):
    """The experiment with every mutated value written out explicitly (per agent / per policy).

    Per-agent reward scales go to `rewards.per_agent_scales.agent_i.<term>`, per-policy entropy to
    `training.per_module.<policy>.entropy_coeff`, so each has one path a mutation can change.
    """
    pbt: PBTConfig = experiment.pbt
    data = experiment.model_dump(mode="python")
    if pbt.reward_scales == "per_agent":
        table = experiment.rewards.scale_table()
        data["rewards"]["per_agent_scales"] = {
            agent_id: {term: value for term, value in zip(REWARD_TERMS, row, strict=True)
                       if term not in pbt.shared_reward_terms}
            for agent_id, row in zip(AGENT_IDS, table, strict=True)
        }
    if pbt.entropy == "per_policy":
        per_module = data["training"].setdefault("per_module", {})
        for policy in experiment.training.policy_ids:
            entry = per_module.setdefault(policy, {})
            if entry.get("entropy_coeff") is None:
                entry["entropy_coeff"] = experiment.training.entropy_coeff
    return type(experiment).model_validate(data, strict=False)


def resolved_mutations(experiment) -> list[Mutation]:
    """Every mutated hyperparameter of the (member) experiment, as experiment paths with bounds."""
    pbt: PBTConfig = experiment.pbt
    mutations = []
    if pbt.reward_scales != "none":
        for path, value in _mutated_reward_scales(experiment):
            if value == 0:
                continue  # a switched-off term stays off: log space has no room for 0
            bounds = sorted((value / pbt.reward_scale_range, value * pbt.reward_scale_range))
            mutations.append(Mutation(path, *bounds))
    if pbt.entropy == "per_policy":
        for policy in experiment.training.policy_ids:
            mutations.append(Mutation(f"training.per_module.{policy}.entropy_coeff", *pbt.entropy_coeff_range))
    elif pbt.entropy == "shared":
        mutations.append(Mutation("training.entropy_coeff", *pbt.entropy_coeff_range))
    values = experiment.model_dump(mode="python")
    for path, (low, high) in pbt.mutations.items():
        check_mutable(path)
        parts = path.split(".")
        if parts[:2] == ["rewards", "per_agent_scales"] and parts[-1] in pbt.shared_reward_terms:
            raise ValueError(
                f"pbt.mutations.{path}: {parts[-1]} is in pbt.shared_reward_terms (one value for both agents); "
                f"mutate rewards.scales.{parts[-1]}, or remove it from pbt.shared_reward_terms"
            )
        policies = experiment.training.policy_ids
        if parts[:2] == ["training", "per_module"] and parts[2] not in policies:
            raise ValueError(f"pbt.mutations.{path}: unknown policy {parts[2]!r}; policies: {list(policies)}")
        mutation = Mutation(path, low, high)  # raises for bounds in the wrong order or around 0
        start = _starting_value(values, path)
        if start is None:  # e.g. a policy's own lr, which follows training.lr unless set
            raise ValueError(f"pbt.mutations.{path}: the experiment does not set it, so there is no value to start "
                             f"from; set {path} in the experiment")
        if not low <= start <= high:
            raise ValueError(f"pbt.mutations.{path}: the experiment starts it at {start:g}, outside [{low:g}, "
                             f"{high:g}]; widen the bounds or set {path} inside them")
        # A value pbt.reward_scales / pbt.entropy already mutates gets these bounds instead of its defaults.
        known = [i for i, m in enumerate(mutations) if m.path == path]
        if known:
            mutations[known[0]] = mutation
        else:
            mutations.append(mutation)
    return mutations


def _starting_value(config: dict, path: str) -> float | None:
    """The experiment's value at a mutated path, None where it is unset."""
    try:
        value = get_path(config, path)
    except (KeyError, TypeError):  # a section or entry that is not there
        return None
    return None if value is None else float(value)


def _mutated_reward_scales(experiment) -> list[tuple[str, float]]:
    """(experiment path, starting value) of each reward scale `pbt.reward_scales` mutates."""
    pbt: PBTConfig = experiment.pbt
    overrides = experiment.rewards.per_agent_scales
    if pbt.reward_scales == "shared":
        for agent_id, terms in overrides.items():
            if terms:
                raise ValueError(
                    f"pbt.reward_scales: shared mutates rewards.scales, which rewards.per_agent_scales.{agent_id} "
                    f"overrides ({', '.join(terms)}); remove the override, or use reward_scales: per_agent"
                )
        return [(f"rewards.scales.{term}", value) for term, value in experiment.rewards.scales.model_dump().items()]
    scales = []
    for agent_id, row in zip(AGENT_IDS, experiment.rewards.scale_table(), strict=True):
        for term, value in zip(REWARD_TERMS, row, strict=True):
            if term not in pbt.shared_reward_terms:
                scales.append((f"rewards.per_agent_scales.{agent_id}.{term}", value))
    for term in pbt.shared_reward_terms:
        for agent_id, terms in overrides.items():
            if term in terms:
                raise ValueError(
                    f"pbt.shared_reward_terms: {term} is mutated once for both agents, but "
                    f"rewards.per_agent_scales.{agent_id}.{term} sets it for one; set rewards.scales.{term} "
                    f"instead, or remove {term} from pbt.shared_reward_terms"
                )
        scales.append((f"rewards.scales.{term}", getattr(experiment.rewards.scales, term)))
    return scales


#: Training settings `pbt.mutations` may name besides reward scales (`training.<field>`), and per policy
#: (`training.per_module.<policy>.<field>`).
MUTABLE_TRAINING_FIELDS = ("lr", "entropy_coeff", "clip_param", "gae_lambda", "vf_loss_coeff", "grad_clip")
MUTABLE_PER_MODULE_FIELDS = ("lr", "entropy_coeff")


#: Prefixes a mutated value's path drops where it is shown (console, report): each remaining name stays unique.
DISPLAY_PREFIXES = ("rewards.per_agent_scales.", "training.per_module.", "rewards.", "training.")


def display_name(path: str) -> str:
    """'rewards.per_agent_scales.agent_1.ocb' -> 'agent_1.ocb'; 'training.lr' -> 'lr'."""
    prefix = next((p for p in DISPLAY_PREFIXES if path.startswith(p)), "")
    return path[len(prefix):]


def check_mutable(path: str) -> None:
    """Raise ValueError (naming `pbt.mutations.<path>`) unless `path` is a value PBT may mutate."""
    parts = path.split(".")
    mutable = (
        (parts[0] == "rewards" and len(parts) >= 3 and parts[-1] in REWARD_TERMS)
        or (parts[0] == "training" and len(parts) == 2 and parts[1] in MUTABLE_TRAINING_FIELDS)
        or (parts[:2] == ["training", "per_module"] and len(parts) == 4 and parts[3] in MUTABLE_PER_MODULE_FIELDS)
    )
    if not mutable:
        raise ValueError(
            f"pbt.mutations.{path}: not a mutable value; use rewards.scales.<term>, "
            f"rewards.per_agent_scales.<agent>.<term>, training.<{'|'.join(MUTABLE_TRAINING_FIELDS)}> or "
            f"training.per_module.<policy>.<{'|'.join(MUTABLE_PER_MODULE_FIELDS)}>"
        )
