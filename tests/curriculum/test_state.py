"""Scheduler state: save, load into a fresh scheduler (through a real file), and continue bit for bit."""

import pickle

import pytest
import torch

from curriculum import CurriculumStateError
from curriculum.scheduler import STATE_TENSORS

LEVELS = [
    {"target_distance_m": (1.1, 1.5), "box_size_m": 0.8},
    {"target_distance_m": (1.3, 2.0), "box_size_m": 1.0},
    {"target_distance_m": (1.5, 3.0), "box_size_m": 1.2},
]
CONFIGS = {
    "threshold_whole_range": dict(levels=LEVELS, initial_level_max=2, window_episodes=3, min_episodes=1),
    "learnability": dict(levels=LEVELS, rule="learnability", stats_window_episodes=7),
    "pooled": dict(levels=LEVELS, rule="pooled", stats_window_episodes=7, level_episodes=3, probe_share=0.3),
    "off": dict(enabled=False),
}


def drive(scheduler, steps, generator):
    """Random batches of episode ends, like an env's auto-resets. Returns every task handed out."""
    handed_out = []
    for _ in range(steps):
        n = int(torch.randint(1, 6, (1,), generator=generator))
        ids = torch.randperm(scheduler.num_envs, generator=generator)[:n]
        success = torch.rand(len(ids), generator=generator) < 0.55
        scheduler.episode_end(ids, success)
        handed_out.append(scheduler.task_params(ids))
    return handed_out


def assert_same_state(sa: dict, sb: dict):
    assert sa.keys() == sb.keys()
    for key in sa:
        if isinstance(sa[key], torch.Tensor):
            assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key
        else:
            assert sa[key] == sb[key], key


@pytest.mark.parametrize("name", CONFIGS)
def test_state_round_trip_through_a_file_continues_bit_exactly(make_scheduler, tmp_path, name):
    config = dict(num_envs=12, seed=7, env_id_offset=24, eval_fraction=0.1, **CONFIGS[name])
    original = make_scheduler(**config)
    original.task_params(torch.arange(12))
    drive(original, 60, torch.Generator().manual_seed(0))
    torch.save(original.state_dict(), tmp_path / "curriculum.pt")

    restored = make_scheduler(**{**config, "seed": 99})  # a new process; the seed comes from the state
    restored.task_params(torch.arange(12))  # ... whose envs already reset once, drawing other tasks
    restored.load_state_dict(torch.load(tmp_path / "curriculum.pt"))
    assert_same_state(original.state_dict(), restored.state_dict())
    assert restored.metrics() == original.metrics()

    # Same outcomes from here on -> same tasks, levels, windows and RNG counters, step for step.
    ahead = drive(original, 60, torch.Generator().manual_seed(1))
    again = drive(restored, 60, torch.Generator().manual_seed(1))
    for a, b in zip(ahead, again, strict=True):
        assert all(torch.equal(a[key], b[key]) for key in a)
    assert_same_state(original.state_dict(), restored.state_dict())
    if name == "off":
        assert original.levels.eq(-1).all()
    else:  # the run really moved: levels and windows are not at their initial values
        assert original.levels.unique().numel() > 1 and original.tickets_issued.sum() > 0


def test_state_is_plain_picklable_cpu_data_and_a_copy(make_scheduler):
    s = make_scheduler(levels=LEVELS)
    s.task_params(torch.arange(8))
    state = s.state_dict()
    assert all(t.device.type == "cpu" for t in state.values() if isinstance(t, torch.Tensor))
    assert set(STATE_TENSORS) <= state.keys()
    pickle.loads(pickle.dumps(state))  # Ray ships it between processes
    s.episode_end(torch.arange(8), torch.ones(8, dtype=torch.bool))
    assert state["window_count"].eq(0).all()  # saving copied, later steps do not change the saved state


def test_loading_a_state_of_other_levels_or_envs_fails_and_changes_nothing(make_scheduler):
    saved = make_scheduler(levels=LEVELS)
    saved.task_params(torch.arange(8))
    state = saved.state_dict()

    other_levels = make_scheduler(levels=LEVELS[:2])
    before = other_levels.state_dict()
    with pytest.raises(CurriculumStateError, match="level_table: the curriculum levels .* changed"):
        other_levels.load_state_dict(state)
    assert_same_state(other_levels.state_dict(), before)

    with pytest.raises(CurriculumStateError, match="num_envs: the state was saved with 8, this scheduler has 4"):
        make_scheduler(num_envs=4, levels=LEVELS).load_state_dict(state)
    with pytest.raises(CurriculumStateError, match="env_id_offset"):
        make_scheduler(env_id_offset=8, levels=LEVELS).load_state_dict(state)
    with pytest.raises(CurriculumStateError, match="window: saved shape"):
        make_scheduler(levels=LEVELS, window_episodes=6).load_state_dict(state)
