"""The population scheduler: Ray Tune's PopulationBasedTraining with a replacement rule that does not churn.

Tune's PBT decides at every `perturbation_interval` whether a member continues, is checkpointed as a potential
donor (top quantile), or is replaced by a copy of a donor with explored hyperparameters (bottom quantile).
By default the decision is asynchronous (Tune's): the member that arrives first ranks itself against the others'
scores from their last decision, and a run with few decisions can waste them all (benchmarks/RESULTS.md, round 8
on the H200). `pbt.synchronous: true` makes every member pause at the decision iteration, keeping its process,
until all have their score for it. Two more things differ from Tune's:

- **Who is replaced** (`_quantiles`): only the bottom members that are *clearly* worse than the leader
  (`population.exploit.replacement_split`, DexPBT's double threshold), so evaluation noise causes no churn.
  This is one of the hooks of `PopulationBasedTrainingWithHooks` (`mapush_rllib.ray_compat`); everything else
  (checkpoint hand-over, pausing, logs
  `pbt_global.txt` / `pbt_policy_<trial>.txt`) is Tune's, except that the logs of a resumed run are first
  brought back from the run folder (`population.tune_logs`).
- **How they are mutated** (`MemberExplorer`, Tune's public `custom_explore_fn` hook with no built-in
  mutations): `population.explore.explore` in log space with clamping, on the donor's config; the receiver
  keeps its own identity (`IDENTITY_PATHS`: member index and seeds, restored in `_get_new_config`). Its random
  draws come from (run seed, member, iteration), not from one stream: a resumed run (a fresh scheduler) would
  otherwise replay the draws of the run's first exploits (seen on the H200: after `--resume`, an exploit at
  iteration 241 drew exactly the values of one at iteration 120).
"""

from __future__ import annotations

import copy
import logging
import os
import random
import textwrap

from mapush_rllib.ray_compat import PopulationBasedTrainingWithHooks
from population.exploit import replacement_split
from population.explore import Mutation, explore, get_path, set_path
from population.pbt_config import display_name
from population.result_keys import SCORE
from population.table import WIDTH
from population.tune_logs import restore_pbt_history

logger = logging.getLogger(__name__)
SCORE_METRIC = SCORE
#: Config entries that make a member itself: a member copying a donor's weights and hyperparameters keeps
#: its own index and seeds, so two members never replay the same random streams.
IDENTITY_PATHS = ("member", "seed", "env_config.seed")
EXPLOIT_INDENT = "      "  # the lines of mutated values under an exploit's `[pbt]` line


class MemberExplorer:
    """Tune's `custom_explore_fn`: mutates the trial config of a member that copies a donor.

    Mutations and logs speak experiment paths; `locations` says where each lives in the trial config.
    """

    def __init__(self, mutations: list[Mutation], locations: dict[str, str], *, seed: int,
                 resample_probability: float, factor_range: tuple[float, float]) -> None:
        self.mutations = mutations
        self.locations = locations
        self.seed = seed
        self.rng = random.Random(seed)
        self.resample_probability = resample_probability
        self.factor_range = factor_range

    def for_decision(self, member: int, iteration: int) -> None:
        """Draw the next exploration from (run seed, member, iteration): the same draws in a resumed run as in
        one that never stopped, and different draws at every decision."""
        self.rng = random.Random(f"{self.seed}/{member}/{iteration}")

    def __call__(self, config: dict) -> dict:
        values: dict = {}  # the mutated values, laid out as in the experiment file
        for mutation in self.mutations:
            set_path(values, mutation.path, get_path(config, self.locations[mutation.path]))
        values, operations = explore(
            values, self.mutations, self.rng,
            resample_probability=self.resample_probability, factor_range=self.factor_range,
        )
        new = copy.deepcopy(config)
        for mutation in self.mutations:
            set_path(new, self.locations[mutation.path], get_path(values, mutation.path))
        for path, operation in operations.items():
            logger.debug("[explore] member %s %s: %s", config.get("member"), path, operation)
        return new

    def changes(self, own_config: dict, new_config: dict) -> list[str]:
        """`name old -> new` for each mutated value, the member's own before the exploit and after."""
        return [
            f"{display_name(m.path)} {get_path(own_config, self.locations[m.path]):.4g} -> "
            f"{get_path(new_config, self.locations[m.path]):.4g}"
            for m in self.mutations
        ]


def quiet_tunes_exploit_lines() -> None:
    """Tune's own exploit lines say "No hyperparameters mutated" with a custom explore function (and "no checkpoint
    ... Skip exploit" after a resume): `on_exploit` prints what happened instead."""
    logging.getLogger("ray.tune.schedulers.pbt").setLevel(logging.WARNING)


class ConservativePBT(PopulationBasedTrainingWithHooks):
    """PBT whose bottom members are replaced only when clearly worse than the leader (see module docstring)."""

    def __init__(self, *, explorer: MemberExplorer, threshold_std: float, threshold_abs: float, **kwargs) -> None:
        super().__init__(custom_explore_fn=explorer, **kwargs)
        quiet_tunes_exploit_lines()
        self.explorer = explorer
        self.threshold_std = threshold_std
        self.threshold_abs = threshold_abs
        self._history_restored_by: int | None = None  # the driver process (the scheduler may be unpickled)

    def __setstate__(self, state: dict) -> None:  # a resumed run unpickles the scheduler: no __init__
        super().__setstate__(state)
        quiet_tunes_exploit_lines()

    def before_explore(self, trial) -> None:  # noqa: ANN001 -- a Tune Trial
        self.explorer.for_decision(trial.config.get("member", 0), trial.last_result.get("training_iteration", 0))

    def keep_member_identity(self, new_config: dict, own_config: dict) -> None:
        for path in IDENTITY_PATHS:
            try:
                set_path(new_config, path, get_path(own_config, path))
            except KeyError:
                continue

    def before_exploit_logged(self, trial) -> None:  # noqa: ANN001 -- a Tune Trial
        if self._history_restored_by != os.getpid():  # first exploit of this driver: keep a resumed run's history
            restore_pbt_history(trial)
            self._history_restored_by = os.getpid()

    def on_exploit(self, trial, donor, new_config: dict, scores: tuple[float, float]) -> None:  # noqa: ANN001
        iteration = trial.last_result.get("training_iteration", "?")
        header = (f"[pbt] iteration {iteration}: member {trial.config.get('member')} (score {scores[0]:.3g}) copies "
                  f"member {donor.config.get('member')} (score {scores[1]:.3g}); its values, before -> after:")
        # Lines break only between changes: within one, non-breaking spaces (put back after wrapping).
        changes = self.explorer.changes(trial.config, new_config)
        changes = [change.replace(" ", "\N{NO-BREAK SPACE}") for change in changes]
        lines = textwrap.wrap("; ".join(changes), width=WIDTH, initial_indent=EXPLOIT_INDENT,
                              subsequent_indent=EXPLOIT_INDENT, break_long_words=False)
        print("\n".join([header, *(line.replace("\N{NO-BREAK SPACE}", " ") for line in lines)]), flush=True)

    def split_population(self, scores: dict, quantile_fraction: float) -> tuple[list, list]:
        replaced, donors = replacement_split(
            scores, quantile_fraction=quantile_fraction,
            threshold_std=self.threshold_std, threshold_abs=self.threshold_abs,
        )
        if replaced:
            logger.debug("[pbt] replacing %s with copies of %s (scores %s)", replaced, donors,
                        {str(t): round(s, 4) for t, s in scores.items()})
        return replaced, donors
