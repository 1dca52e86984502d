"""Scheduler rules: promotion, demotion, hysteresis, the top level, the eval slice, learnability, metrics."""

import pytest
import torch

from curriculum import CurriculumStats, eval_slice
from curriculum.learnability import learnability, level_probabilities, sample_levels
from curriculum.threshold import next_levels

ALL = torch.arange(8)
SIZES = [1.0, 1.1, 1.2]
# Three levels whose box sizes tell them apart in the task parameters.
THREE_LEVELS = {
    "levels": [
        {"target_distance_m": (1.1, 1.5), "box_size_m": SIZES[0]},
        {"target_distance_m": (1.3, 2.0), "box_size_m": SIZES[1]},
        {"target_distance_m": (1.5, 3.0), "box_size_m": SIZES[2]},
    ]
}


def play(scheduler, env_ids, outcomes):
    """End one episode in each of `env_ids` with the given outcomes and start the next ones."""
    ids = torch.as_tensor(env_ids)
    scheduler.episode_end(ids, torch.as_tensor(outcomes, dtype=torch.bool))
    return scheduler.task_params(ids)


def started(make_scheduler, **config):
    scheduler = make_scheduler(**{**THREE_LEVELS, **config})
    scheduler.task_params(ALL)  # the env's first reset
    return scheduler


def test_two_successes_promote_one_level_and_clear_the_window(make_scheduler):
    s = started(make_scheduler)
    play(s, [0], [True])
    assert s.levels[0] == 0  # one outcome is not enough (min_episodes 2)
    params = play(s, [0], [True])
    assert s.levels[0] == 1 and s.window_count[0] == 0
    assert params["box_size_m"].tolist() == pytest.approx([SIZES[1]])
    assert params["target_distance_m"].flatten().tolist() == pytest.approx([1.3, 2.0])
    assert s.levels[1:].eq(0).all() and int(s.promotions) == 1


def test_repeated_failure_demotes_but_level_zero_is_the_floor(make_scheduler):
    s = started(make_scheduler, initial_level_max=2, seed=5)
    start = s.levels.clone()
    assert set(start.tolist()) == {0, 1, 2}  # initial levels spread as configured
    play(s, ALL, [False] * 8)
    play(s, ALL, [False] * 8)
    assert torch.equal(s.levels, (start - 1).clamp(min=0))
    assert int(s.demotions) == int((start > 0).sum())


def test_hysteresis_band_and_dwell_after_a_move(make_scheduler):
    s = started(make_scheduler)  # window 4, min 2, promote >= 0.75, demote <= 0.25
    for outcome in [True, False, True, False]:  # 50 %: inside the band, never moves
        play(s, [0], [outcome])
        assert s.levels[0] == 0
    play(s, [0], [True])  # window F T F T: still 50 %
    assert s.levels[0] == 0
    play(s, [0], [True])  # window T F T T: 75 % -> promoted
    assert s.levels[0] == 1
    play(s, [0], [False])  # one failure at the new level: the cleared window holds only it
    assert s.levels[0] == 1
    play(s, [0], [False])
    assert s.levels[0] == 0


def test_top_level_cannot_be_promoted_and_whole_range_plays_every_level(make_scheduler):
    s = started(make_scheduler, initial_level_max=2, seed=1, num_envs=64, window_episodes=2, min_episodes=1)
    top = s.levels == 2
    assert top.sum() > 5
    played = []
    for _ in range(30):
        params = play(s, torch.arange(64), top.tolist())  # the top envs always succeed, the others fail
        played.append(params["box_size_m"][top])
    assert s.levels[top].eq(2).all()  # still at the top, not beyond
    counts = torch.bincount(torch.bucketize(torch.cat(played), torch.tensor(SIZES)), minlength=3)
    assert (counts > counts.sum() / 3 * 0.7).all(), counts  # each level ~ a third of the top envs' episodes


def test_top_level_stay_plays_only_the_top_level(make_scheduler):
    s = started(make_scheduler, top_level="stay", levels=THREE_LEVELS["levels"][:2], min_episodes=1)
    for _ in range(5):
        params = play(s, ALL, [True] * 8)
    assert s.levels.eq(1).all()
    assert params["box_size_m"].tolist() == pytest.approx([SIZES[1]] * 8)


def test_eval_slice_always_runs_the_full_task_and_never_moves(make_scheduler):
    s = started(make_scheduler, eval_fraction=0.25, min_episodes=1)
    is_eval = torch.tensor([False, False, False, True] * 2)
    assert torch.equal(s.is_eval, is_eval)
    for _ in range(3):
        params = play(s, ALL, [True] * 8)
    assert params["box_size_m"][is_eval].tolist() == pytest.approx([1.2, 1.2])
    assert params["target_distance_m"][is_eval].flatten().tolist() == pytest.approx([1.5, 3.0] * 2)
    assert s.levels[is_eval].eq(-1).all() and s.levels[~is_eval].eq(2).all()
    m = s.metrics()
    assert m["curriculum/full_task_episodes"] == 6 and m["curriculum/full_task_success_rate"] == 1.0
    assert m["curriculum/eval_envs"] == 2
    assert sum(m[f"curriculum/level_episodes/{k}"] for k in range(3)) == 18  # training envs only


def test_eval_slice_is_a_fixed_share_of_global_env_ids_however_envs_are_split():
    whole = eval_slice(torch.arange(200), 0.05)
    assert int(whole.sum()) == 10 and whole.nonzero().squeeze(1).tolist() == list(range(19, 200, 20))
    split = torch.cat([eval_slice(torch.arange(start, start + 25), 0.05) for start in range(0, 200, 25)])
    assert torch.equal(split, whole)
    assert not eval_slice(torch.arange(200), 0.0).any()


def test_curriculum_off_runs_the_full_task_everywhere_and_scores_only_the_eval_slice(make_scheduler):
    s = started(make_scheduler, enabled=False, eval_fraction=0.25)
    for _ in range(2):
        params = play(s, ALL, [True, False] * 4)
    assert params["box_size_m"].tolist() == pytest.approx([1.2] * 8)
    assert params["target_distance_m"].flatten().tolist() == pytest.approx([1.5, 3.0] * 8)
    m = s.metrics()
    assert m == {"curriculum/eval_envs": 2.0, "curriculum/full_task_success_rate": 0.0,
                 "curriculum/full_task_episodes": 4.0}  # envs 3 and 7 fail in this pattern


def test_threshold_rule_on_raw_tensors():
    levels = torch.tensor([0, 0, 1, 1, 2, 2, 1])
    successes = torch.tensor([3, 1, 0, 4, 4, 0, 3])
    episodes = torch.tensor([4, 4, 4, 4, 4, 4, 3])
    new = next_levels(levels, successes, episodes, top_level=2, min_episodes=4,
                      promote_success_rate=0.75, demote_success_rate=0.25)
    # promote, floor, demote, promote, ceiling, demote, too few episodes
    assert new.tolist() == [1, 0, 0, 2, 2, 1, 1]


def test_learnability_probabilities_peak_where_success_is_half_and_mix_in_uniform():
    successes = torch.tensor([98, 50, 2, 0])
    episodes = torch.tensor([100, 100, 100, 0])  # level 3 never played: prior p = 0.5
    score = learnability(successes, episodes)
    assert score.argmax() in (1, 3) and score[1] == pytest.approx(0.25, abs=1e-3) and score[3] == 0.25
    assert score[0] == pytest.approx(score[2]) and score[0] < 0.03
    probabilities = level_probabilities(successes, episodes, uniform_mix=0.2)
    expected = 0.8 * score / score.sum() + 0.05
    assert torch.allclose(probabilities, expected) and probabilities.sum() == pytest.approx(1.0)


def test_learnability_sampler_draws_levels_with_the_stated_probabilities():
    probabilities = torch.tensor([0.1, 0.6, 0.0, 0.3], dtype=torch.float64)
    uniforms = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(sample_levels(probabilities, uniforms), minlength=4).double()
    assert counts[2] == 0
    # 5 standard deviations of a binomial count: fails only if the sampler is wrong.
    tolerance = 5 * (200_000 * probabilities * (1 - probabilities)).sqrt()
    assert ((counts - 200_000 * probabilities).abs() <= tolerance + 1).all(), counts


def test_learnability_rule_concentrates_envs_on_the_levels_being_learned(make_scheduler):
    """Level 0 always succeeds, level 2 always fails, level 1 succeeds half the time: level 1 should dominate."""
    s = make_scheduler(num_envs=64, rule="learnability", learnability_uniform_mix=0.1, **THREE_LEVELS)
    s.task_params(torch.arange(64))
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        played = s.episode_levels.clone()
        coin = torch.rand(64, generator=generator) < 0.5
        success = (played == 0) | ((played == 1) & coin)
        play(s, torch.arange(64), success.tolist())
    hist = [s.metrics()[f"curriculum/level_hist/{k}"] for k in range(3)]
    # p(1-p) with the Beta(1,1) prior over a 100-episode window: ~0.01, 0.25, ~0.01 -> 0.07 / 0.87 / 0.07
    assert hist[1] > 0.7 and hist[0] < 0.2 and hist[2] < 0.2, hist


def test_rolling_windows_keep_the_last_outcomes_even_from_one_large_batch(make_scheduler):
    s = make_scheduler(num_envs=40, stats_window_episodes=10, **THREE_LEVELS)
    s.task_params(torch.arange(40))
    # 40 outcomes at level 0 in one call: the last 10 (ids 30..39) are successes, the 30 before failures.
    play(s, torch.arange(40), [False] * 30 + [True] * 10)
    m = s.metrics()
    assert m["curriculum/level_episodes/0"] == 10 and m["curriculum/level_success_rate/0"] == 1.0
    play(s, torch.arange(3), [False] * 3)  # the ring moves on: 7 successes left of the last 10
    assert s.metrics()["curriculum/level_success_rate/0"] == pytest.approx(0.7)


def test_metrics_of_split_schedulers_merge_to_those_of_one(make_scheduler):
    """Two env runners (ids 0-7 and 8-15) report, merged, what one scheduler over ids 0-15 reports."""
    config = dict(initial_level_max=2, eval_fraction=0.2, **THREE_LEVELS)
    one = make_scheduler(num_envs=16, seed=3, **config)
    parts = [make_scheduler(num_envs=8, env_id_offset=8 * i, seed=3, **config) for i in range(2)]
    for s in [one, *parts]:
        s.task_params(torch.arange(s.num_envs))
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        ids = torch.randperm(16, generator=generator)[:6]  # each id at most once per call, as from the env
        success = torch.rand(6, generator=generator) < 0.6
        params = play(one, ids, success)
        for i, part in enumerate(parts):
            mine = (ids // 8) == i
            part_params = play(part, ids[mine] - 8 * i, success[mine])
            # Counter-based draws: an env's tasks do not depend on which batch it is in.
            assert torch.equal(part_params["box_size_m"], params["box_size_m"][mine])
    assert torch.equal(torch.cat([p.levels for p in parts]), one.levels)
    merged = CurriculumStats.merge([p.stats() for p in parts]).metrics()
    # Outcome windows end where each scheduler's oldest running episode began (start order), so those of split
    # schedulers cover other episodes than one scheduler's; every other metric merges exactly.
    windowed = ("curriculum/level_success_rate", "curriculum/level_episodes", "curriculum/full_task")
    assert {k: v for k, v in merged.items() if not k.startswith(windowed)} == {
        k: v for k, v in one.metrics().items() if not k.startswith(windowed)}
    assert merged["curriculum/level_episodes/0"] > 0
    assert merged["curriculum/promotions"] + merged["curriculum/demotions"] > 0
    assert 0 < merged["curriculum/level_mean"] <= merged["curriculum/level_max"] <= 2
    assert sum(merged[f"curriculum/level_hist/{k}"] for k in range(3)) == pytest.approx(1.0)


def test_summary_line_says_where_the_curriculum_stands(make_scheduler):
    s = started(make_scheduler, eval_fraction=0.25, min_episodes=1)
    play(s, ALL, [True] * 8)
    assert s.stats().summary() == (
        "curriculum: level mean 1.00, max 1 of 2; full-task success 1.00 (2 episodes)"
    )
