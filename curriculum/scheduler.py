"""The curriculum scheduler: per-env levels chosen at each env's reset, for one batch of envs.

`CurriculumScheduler` is a `TaskSchedule` (`mapush_rllib/task/vec_env.py`): `MAPushVecEnv` calls
`episode_end(env_ids, success)` with the outcomes of the episodes that just ended and then
`task_params(env_ids)` for the tasks of the episodes that start, inside its step. It is pure torch, knows
nothing of Ray, and works the same over every simulator backend; an RLlib env runner holds one per env
batch and saves `state_dict()` with the checkpoint.

What "level" means: an index into the level table (`levels.py`), from 0 (easy: target just beyond the
success radius, small light box) to the top (the full MAPush task, or beyond it if configured). Each env
has its own level (`levels`, shape (E,)). The task an episode actually plays is `episode_levels`: the env's
level, except that

- with the pooled rule (the default), the env's level is the one drawn for its episode: the scheduler-wide
  frontier, or for a `probe_share` of episodes a uniformly drawn level (`pooled.py`);

- with the threshold rule and `top_level: whole_range`, an env at the top level plays a level drawn
  uniformly from the whole table each episode, so easy skills keep being trained;
- with the learnability rule, every episode's level is drawn from the learnability distribution, and the
  env's level is simply the last one drawn;
- the *evaluation slice* -- a fixed set of envs, every (1/eval_fraction)-th by global env id -- always plays
  the full task (the last table row). Its outcomes are the full-task success metric and never drive a
  rule; its share of envs is the share of training samples it costs. With `enabled: false` every env plays
  the full task and only the slice's metric is reported, so runs with and without curriculum compare.

Per table row, outcomes are counted in the order the episodes *started*: each episode takes a ticket at its start
and its outcome is stored under that ticket at its end; a row's statistics are the last `stats_window_episodes`
tickets before the oldest episode of that row still running. Counting outcomes as they end would favour quick
successes -- failures run to the time limit -- and promote on censored data. An episode cut short (its env reset
or rebuilt before it ended) is dropped, with the episodes of its row that started after it. The pooled rule also
reads bounds on the window from the oldest running episode on (`row_bounds`: running episodes as unknown), so a
level's quick successes can decide before its slowest failures end.

State (all in `state_dict()`, restored bit-exactly): per env the level, the level being played, the outcome
window and count, the number of draws taken and the ticket of its running episode; per table row the tickets
issued and the ring of outcomes with their tickets; the promotion and demotion counters; the pooled rule's frontier.
Randomness is counter-based (`mapush_rllib/task/rng.py`): every draw is a hash of (seed, global env id, the env's
draw count), so the RNG state *is* those counters -- nothing else to save -- and an env's draws do not depend on
how envs are batched across runners.
"""

from __future__ import annotations

import torch

from curriculum.config import CurriculumConfig
from curriculum.learnability import level_probabilities, sample_levels
from curriculum.levels import build_level_table, describe_rows
from curriculum.metrics import CurriculumStats
from curriculum.pooled import frontier_rows, next_frontier
from curriculum.threshold import next_levels
from mapush_rllib.sim.config import PhysicsConfig
from mapush_rllib.task import rng
from mapush_rllib.task.config import TaskConfig

STATE_FORMAT = "mapush-pbt/curriculum-state/3"
#: Earlier formats this scheduler still reads: 1 had no pooled-rule frontier (it starts at level 0); 1 and 2 kept
#: outcomes in the order episodes ended (their per-row statistics start afresh: `_from_end_ordered`).
_OLDER_FORMATS = ("mapush-pbt/curriculum-state/1", "mapush-pbt/curriculum-state/2")
#: Per-scheduler tensors saved in `state_dict()`, in this order.
STATE_TENSORS = (
    "levels", "episode_levels", "window", "window_count", "draws", "episode_ticket",
    "outcomes", "outcome_tickets", "tickets_issued", "promotions", "demotions", "frontier",
)
#: Ring room per env and row beyond the S counted outcomes: while the longest episode of a row runs (MAPush: 1,000
#: steps) each of its envs may start this many quick ones after it (a success after ~60 steps).
RING_ENVS_FACTOR = 16
_RNG_SALT = 0x43555252  # curriculum draws differ from the simulator's reset draws under the same seed
_INITIAL_LEVEL_DRAW = 2**31 - 2  # the rng "draw count" of the initial-level draw


class CurriculumStateError(ValueError):
    """A saved curriculum state does not fit this scheduler; the message says what differs."""


def eval_slice(global_env_ids: torch.Tensor, fraction: float) -> torch.Tensor:
    """(n,) bool: the envs that always run the full task. Every (1/fraction)-th global env id, evenly spread,
    so any split of ids 0..N-1 over env runners holds floor(N * fraction) of them in total."""
    g = global_env_ids.to(torch.float64)
    return torch.floor((g + 1) * fraction) > torch.floor(g * fraction)


class CurriculumScheduler:
    """Per-env curriculum over target distance and box size for E envs (see the module docstring).

    Args:
        config: the curriculum config.
        task: the task config; its task is the full task (the eval slice's, and the default top level).
        physics: the physics config (agent footprint, for the spawn clearance check).
        num_envs: E, the envs of the batch this scheduler serves (local ids 0..E-1).
        seed: the experiment seed.
        env_id_offset: global id of local env 0 (as `MAPushVecEnv`'s), for the eval slice and the RNG.
        device: where the per-env state lives (the env's device).
    """

    #: Its task parameters are rows of the level table, checked against the simulator's rules when built
    #: (`levels.py`), so `MAPushVecEnv` need not re-check them (a host sync per reset step on GPUs).
    task_params_validated = True

    def __init__(
        self,
        config: CurriculumConfig,
        task: TaskConfig,
        physics: PhysicsConfig,
        *,
        num_envs: int,
        seed: int = 0,
        env_id_offset: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.table = build_level_table(config, task, physics).to(self.device)
        self.num_envs = num_envs
        self.num_levels = self.table.num_levels
        self.top_level = self.num_levels - 1
        self.seed = seed
        self.env_id_offset = env_id_offset
        self.global_env_ids = torch.arange(env_id_offset, env_id_offset + num_envs, device=self.device)
        self.is_eval = eval_slice(self.global_env_ids, config.eval_fraction)

        E, W = num_envs, config.window_episodes
        R, S = self.num_levels + 1, config.stats_window_episodes
        long = dict(dtype=torch.long, device=self.device)
        # Per env. Envs that have no level (eval slice, curriculum off) hold -1.
        self.levels = self._initial_levels()  # (E,)
        self.episode_levels = torch.full((E,), self.table.full_task_row, **long)  # (E,) table row being played
        self.window = torch.zeros(E, W, dtype=torch.bool, device=self.device)  # (E, W) outcomes, newest last
        self.window_count = torch.zeros(E, **long)  # (E,) outcomes in the window, <= W
        self.draws = torch.zeros(E, **long)  # (E,) task_params calls so far: the env's RNG counter
        self.episode_ticket = torch.full((E,), -1, **long)  # (E,) ticket of the running episode at its row; -1: none
        # Per table row (levels, then the full task): a ring of C outcomes, slot = ticket % C, each with its ticket
        # (-1: none): room for the S counted ones behind the tickets issued since the oldest running episode began
        # (up to E x the longest episode over the shortest; beyond that the oldest are dropped, at random).
        # Column C is scratch space for writes that must not land (see _record).
        C = S + RING_ENVS_FACTOR * E
        self.outcomes = torch.zeros(R, C + 1, dtype=torch.bool, device=self.device)
        self.outcome_tickets = torch.full((R, C + 1), -1, **long)
        self.tickets_issued = torch.zeros(R, **long)  # (R,) tickets handed out so far
        self.promotions = torch.zeros((), **long)
        self.demotions = torch.zeros((), **long)
        self.frontier = torch.zeros((), **long)  # the pooled rule's level for every training env

    # ---------------------------------------------------------------------------------- TaskSchedule

    def episode_end(self, env_ids: torch.Tensor, success: torch.Tensor) -> None:
        """Record the outcomes of the episodes that just ended and move levels.

        Args:
            env_ids: (n,) local env ids, each at most once (the envs that are being reset).
            success: (n,) bool outcome of each env's episode.
        """
        ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device)
        success = torch.as_tensor(success, dtype=torch.bool, device=self.device)
        # With the curriculum off every env plays the full task; only the eval slice's outcomes are scored, so
        # the full-task metric has the same definition with and without curriculum.
        self._record(ids, success)
        if self.config.enabled and self.config.rule == "pooled":
            self._move_frontier()
        if not self.config.enabled or self.config.rule != "threshold":
            return
        cfg = self.config
        train = ~self.is_eval[ids]
        window = torch.cat([self.window[ids, 1:], success[:, None]], dim=1)
        count = (self.window_count[ids] + 1).clamp(max=cfg.window_episodes)
        old = self.levels[ids]
        new = next_levels(
            old, window.sum(dim=1), count, top_level=self.top_level, min_episodes=cfg.min_episodes,
            promote_success_rate=cfg.promote_success_rate, demote_success_rate=cfg.demote_success_rate,
        )
        new = torch.where(train, new, old)
        moved = new != old  # a moved env starts an empty window at its new level
        self.window[ids] = torch.where(train[:, None], window & ~moved[:, None], self.window[ids])
        self.window_count[ids] = torch.where(train, torch.where(moved, 0, count), self.window_count[ids])
        self.levels[ids] = new
        self.promotions += (new > old).sum()
        self.demotions += (new < old).sum()

    def task_params(self, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Choose the tasks of the episodes starting in `env_ids` (n,): TASK_PARAM_FIELDS -> (n, 2) / (n,)."""
        ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device)
        u = rng.uniform(self.seed ^ _RNG_SALT, self.global_env_ids[ids], self.draws[ids], 1)[:, 0]
        self.draws[ids] += 1
        rows = self._choose_rows(ids, u)
        self._start_tickets(ids, rows, counted=self.is_eval[ids] | self.config.enabled)
        self.episode_levels[ids] = rows
        return self.table.params(rows)

    # --------------------------------------------------------------------------------------- reporting

    def stats(self) -> CurriculumStats:
        """Counts for the metrics; merge those of several schedulers with `CurriculumStats.merge`."""
        successes, episodes = self.row_outcomes()
        train_levels = self.levels[~self.is_eval & (self.levels >= 0)]
        as_cpu = lambda t: t.detach().to("cpu", torch.long)  # noqa: E731
        return CurriculumStats(
            enabled=self.config.enabled,
            envs_per_level=as_cpu(torch.bincount(train_levels, minlength=self.num_levels)),
            frontier_envs=as_cpu(self._frontier_envs()),
            level_successes=as_cpu(successes[: self.num_levels]),
            level_episodes=as_cpu(episodes[: self.num_levels]),
            full_task_successes=as_cpu(successes[self.table.full_task_row]),
            full_task_episodes=as_cpu(episodes[self.table.full_task_row]),
            eval_envs=as_cpu(self.is_eval.sum()),
            promotions=as_cpu(self.promotions),
            demotions=as_cpu(self.demotions),
        )

    def metrics(self) -> dict[str, float]:
        """`curriculum/...` metrics of this scheduler alone (see `curriculum.metrics`)."""
        return self.stats().metrics()

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where this scheduler is: CPU tensors and plain values."""
        state = {
            "format": STATE_FORMAT,
            "num_envs": self.num_envs,
            "env_id_offset": self.env_id_offset,
            "seed": self.seed,
            "level_table": self.table.as_tensor().cpu(),
        }
        state.update({name: getattr(self, name).detach().cpu().clone() for name in STATE_TENSORS})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`. Raises CurriculumStateError, changing nothing, if it does not fit.

        The env's running episodes were started before the load, with other tasks: reset the env after
        loading (`MAPushVecEnv.reset()`), so every episode plays what the restored state says it plays.
        """
        if state.get("format") in _OLDER_FORMATS:
            state = self._from_end_ordered(state)
        if state.get("format") != STATE_FORMAT:
            raise CurriculumStateError(
                f"not a curriculum state of format {STATE_FORMAT!r} (got {state.get('format')!r})"
            )
        for key in ("num_envs", "env_id_offset"):
            if state[key] != getattr(self, key):
                raise CurriculumStateError(
                    f"{key}: the state was saved with {state[key]}, this scheduler has {getattr(self, key)}; "
                    "a curriculum state belongs to the same envs"
                )
        saved_table, table = state["level_table"], self.table.as_tensor().cpu()
        if saved_table.shape != table.shape or not torch.equal(saved_table, table):
            raise CurriculumStateError(
                "level_table: the curriculum levels (or the task config) changed since the state was saved, so "
                "the saved levels would mean other tasks. Saved:\n  "
                + "\n  ".join(describe_rows(saved_table)) + "\nnow:\n  " + "\n  ".join(self.table.describe())
            )
        for name in STATE_TENSORS:
            mine = getattr(self, name)
            if state[name].shape != mine.shape or state[name].dtype != mine.dtype:
                raise CurriculumStateError(
                    f"{name}: saved shape {tuple(state[name].shape)} {state[name].dtype}, expected "
                    f"{tuple(mine.shape)} {mine.dtype}; window_episodes or stats_window_episodes changed"
                )
        self.seed = state["seed"]
        for name in STATE_TENSORS:
            getattr(self, name).copy_(state[name])

    # --------------------------------------------------------------------------------------- internals

    def _initial_levels(self) -> torch.Tensor:
        levels = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        if self.config.initial_level_max > 0:
            first = torch.full_like(self.global_env_ids, _INITIAL_LEVEL_DRAW)
            u = rng.uniform(self.seed ^ _RNG_SALT, self.global_env_ids, first, 1)[:, 0]
            levels = (u * (self.config.initial_level_max + 1)).long().clamp(max=self.config.initial_level_max)
        no_level = self.is_eval | (not self.config.enabled)
        return torch.where(no_level, -1, levels)

    def _choose_rows(self, ids: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(n,) table rows for new episodes of `ids`, from one uniform draw per env."""
        full = torch.full_like(ids, self.table.full_task_row)
        if not self.config.enabled:
            return full
        train = ~self.is_eval[ids]
        if self.config.rule == "pooled":
            rows = frontier_rows(
                self.frontier, u, num_levels=self.num_levels, probe_share=self.config.probe_share,
                whole_range_at_top=self.config.top_level == "whole_range",
            )
            self.levels[ids] = torch.where(train, rows, self.levels[ids])
        elif self.config.rule == "learnability":
            L = self.num_levels
            successes, episodes = self.row_outcomes()
            probabilities = level_probabilities(successes[:L], episodes[:L], self.config.learnability_uniform_mix)
            rows = sample_levels(probabilities, u)
            self.levels[ids] = torch.where(train, rows, self.levels[ids])
        else:
            rows = self.levels[ids]
            if self.config.top_level == "whole_range":
                anywhere = (u * self.num_levels).long().clamp(max=self.top_level)
                rows = torch.where(rows == self.top_level, anywhere, rows)
        return torch.where(train, rows, full)

    def _move_frontier(self) -> None:
        L, cfg = self.num_levels, self.config
        successes, episodes = self.row_outcomes()
        sure_successes, sure_failures, window = (t[:L] for t in self.row_bounds())
        new = next_frontier(
            self.frontier, successes[:L], episodes[:L],
            level_episodes=cfg.level_episodes, promote_success_rate=cfg.promote_success_rate,
            demote_success_rate=cfg.demote_success_rate,
            bounds=(sure_successes, sure_failures, window),
        )
        self.promotions += (new - self.frontier).clamp(min=0)
        self.demotions += (self.frontier - new).clamp(min=0)
        self.frontier.copy_(new)

    def _frontier_envs(self) -> torch.Tensor:
        """(L,) this scheduler's training envs, all counted at its frontier (zeros unless the rule is pooled)."""
        counts = torch.zeros(self.num_levels, dtype=torch.long, device=self.device)
        if self.config.enabled and self.config.rule == "pooled":
            counts[self.frontier] = (~self.is_eval).sum()
        return counts

    def row_outcomes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(successes, episodes), (R,) each: per table row, over its last S tickets before the oldest episode of
        that row still running (every episode started before it has ended; cut-short ones hold no outcome)."""
        S = self.config.stats_window_episodes
        tickets = self._first_unsettled_ticket()[:, None] - S + torch.arange(S, device=self.device)  # (R, S)
        ended, success = self._ended(tickets)
        return success.sum(dim=1), ended.sum(dim=1)

    def row_bounds(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(successes, failures, episodes), (R,) each: per table row, over the S tickets from its oldest running
        episode on. `episodes` counts the ended ones and the running ones, whose outcome is not known yet, so
        successes / episodes is a lower bound of that window's success rate and 1 - failures / episodes an upper
        one. A row's quick outcomes (at MAPush, its successes) bound it long before its slow ones end."""
        S = self.config.stats_window_episodes
        start = self._first_unsettled_ticket()  # (R,)
        tickets = start[:, None] + torch.arange(S, device=self.device)  # (R, S)
        ended, success = self._ended(torch.where(tickets < self.tickets_issued[:, None], tickets, -1))
        ticket = self.episode_ticket
        in_window = (ticket >= start[self.episode_levels]) & (ticket < start[self.episode_levels] + S)
        running = torch.zeros_like(self.tickets_issued).scatter_add_(0, self.episode_levels, in_window.long())
        return success.sum(dim=1), (ended & ~success).sum(dim=1), ended.sum(dim=1) + running

    def _first_unsettled_ticket(self) -> torch.Tensor:
        """(R,) per table row, the ticket of its oldest running episode (or the next ticket when none runs):
        every episode of the row started before it has ended or was dropped."""
        never = torch.iinfo(torch.long).max
        running = torch.where(self.episode_ticket >= 0, self.episode_ticket, never)  # (E,) tickets of running ones
        oldest_running = torch.full((self.num_levels + 1,), never, dtype=torch.long, device=self.device)
        oldest_running.scatter_reduce_(0, self.episode_levels, running, reduce="amin")
        return torch.minimum(oldest_running, self.tickets_issued)

    def _ended(self, tickets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ended, success) bool masks, (R, S): which of these tickets of each row hold an outcome (negative
        tickets: none), and which of those succeeded."""
        C = self.outcomes.shape[1] - 1
        slots = tickets.remainder(C)
        ended = (tickets >= 0) & (self.outcome_tickets.gather(1, slots) == tickets)
        return ended, ended & self.outcomes.gather(1, slots)

    def _start_tickets(self, ids: torch.Tensor, rows: torch.Tensor, counted: torch.Tensor) -> None:
        """Give the episodes starting in `ids` at table `rows` their tickets, (n,) each; uncounted ones get none.

        An env's previous episode that never reported its end (its env was reset or rebuilt) is cut short. It is
        dropped, and with it every episode of its row started after it: of those, the ones already ended are the
        quick ones (mostly successes), so keeping them would bias the row toward success.
        """
        R = self.num_levels + 1
        never = torch.iinfo(torch.long).max
        cut = torch.where(self.episode_ticket[ids] >= 0, self.episode_ticket[ids], never)
        cut_from = torch.full((R,), never, dtype=torch.long, device=self.device)
        cut_from.scatter_reduce_(0, self.episode_levels[ids], cut, reduce="amin")  # (R,) first cut ticket
        self.outcome_tickets.masked_fill_(self.outcome_tickets >= cut_from[:, None], -1)
        self.episode_ticket.masked_fill_(self.episode_ticket >= cut_from[self.episode_levels], -1)
        onehot = ((rows[:, None] == torch.arange(R, device=rows.device)) & counted[:, None]).long()  # (n, R)
        rank = (onehot.cumsum(dim=0) * onehot).sum(dim=1) - 1  # (n,) order among counted starts of a row
        self.episode_ticket[ids] = torch.where(counted, self.tickets_issued[rows] + rank, -1)
        self.tickets_issued.add_(onehot.sum(dim=0))

    def _record(self, ids: torch.Tensor, success: torch.Tensor) -> None:
        """Store the outcomes of the episodes ending in `ids` (n,) under their tickets.

        Two tickets C apart share a slot: the newer keeps it (within one call too: `amax` picks it, the other
        writes to the scratch column), so the slot never holds an outcome under another episode's ticket.
        """
        C = self.outcomes.shape[1] - 1
        ticket, rows = self.episode_ticket[ids], self.episode_levels[ids]
        slot = torch.where(ticket >= 0, ticket.remainder(C), C)
        index = rows * (C + 1) + slot  # into the flat (R * (C + 1),) view
        flat = self.outcome_tickets.view(-1)
        flat.scatter_reduce_(0, index, ticket, reduce="amax")
        wins = (ticket >= 0) & (flat[index] == ticket)
        self.outcomes[rows, torch.where(wins, slot, C)] = success
        self.outcome_tickets[:, C] = -1
        self.episode_ticket[ids] = -1

    def _from_end_ordered(self, state: dict) -> dict:
        """A state of format 1 or 2 in this format: levels, windows, draws and counters carried over; the per-row
        statistics, which were kept in the order episodes ended, start afresh."""
        fresh = {name: getattr(self, name).detach().cpu().clone()
                 for name in ("episode_ticket", "outcomes", "outcome_tickets", "tickets_issued")}
        return {"frontier": torch.zeros((), dtype=torch.long), **state, **fresh, "format": STATE_FORMAT}
