"""Every MAPush reward term against hand-computed values (spec §3), and the attribution modes."""

import math

import pytest
import torch

from mapush_rllib.task.config import REWARD_TERMS, RewardConfig
from mapush_rllib.task.rewards import TERMS, RewardFunction, RewardInputs

Z = 0.25


def inputs(agent_xy, box_xy=(0.0, 0.0), box_yaw=0.0, target=(3.0, 0.0), box_vel=(0.0, 0.0), prev=2.0, now=1.99,
           success=False, exception=False, expanded=False):
    agent_pos = torch.tensor([[[x, y, Z] for x, y in agent_xy]])
    return RewardInputs(
        box_pos=torch.tensor([[*box_xy, Z]]), box_yaw=torch.tensor([box_yaw]),
        box_lin_vel=torch.tensor([[*box_vel, 0.0]]), box_half_size=torch.tensor([0.6]),
        target_xy=torch.tensor([target]), agent_pos=agent_pos, distance=torch.tensor([now]),
        prev_distance=torch.tensor([prev]), success=torch.tensor([success]), exception=torch.tensor([exception]),
        agent_box_force=torch.zeros(1, len(agent_xy)), expanded_ocb=expanded,
    )


def term(name):
    return next(t for t in TERMS if t.name == name).fn


def test_distance_to_target_progress():
    # 100 * [2 * (2.00 - 1.99) - 0.01 * 1.99] = 100 * (0.02 - 0.0199) = 0.01
    assert term("distance_to_target")(inputs([(-1, 0), (1, 0)])).item() == pytest.approx(0.01, abs=1e-5)
    # Moving away: 100 * [2 * (2.0 - 2.1) - 0.021] = -22.1
    assert term("distance_to_target")(inputs([(-1, 0), (1, 0)], now=2.1)).item() == pytest.approx(-22.1, abs=1e-4)


def test_approach_to_box_uses_3d_distance():
    # Agent 0 at 1.0 m: -(1.0 + 0.5)^2 = -2.25; agent 1 at (0, 2): -(2.5)^2 = -6.25
    value = term("approach_to_box")(inputs([(-1.0, 0.0), (0.0, 2.0)]))
    assert value[0].tolist() == pytest.approx([-2.25, -6.25])


def test_collision_applies_to_both_agents():
    # 0.6 m apart: 1 / (0.02 + 0.6 / 3) = 1 / 0.22 = 4.5454...
    value = term("collision")(inputs([(2.0, 0.0), (2.0, 0.6)]))
    assert value[0].tolist() == pytest.approx([1 / 0.22, 1 / 0.22])


def test_push_needs_box_speed_above_10_cm_per_s():
    assert term("push")(inputs([(-1, 0), (1, 0)], box_vel=(0.08, 0.08))).item() == 1.0  # 0.113 m/s
    assert term("push")(inputs([(-1, 0), (1, 0)], box_vel=(0.05, 0.05))).item() == 0.0  # 0.071 m/s


def test_ocb_is_plus_one_behind_minus_one_in_front_zero_beside():
    # Target along +x: behind the box is -x, its closest edge's inward normal is +x.
    value = term("ocb")(inputs([(-1.0, 0.0), (1.0, 0.0)]))
    assert value[0].tolist() == pytest.approx([1.0, -1.0])
    beside = term("ocb")(inputs([(0.0, -1.0), (0.0, 1.0)]))
    assert beside[0].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_ocb_follows_box_rotation():
    # Box turned by 90 deg: its faces still align with the axes, so the result is unchanged...
    assert term("ocb")(inputs([(-1.0, 0.0), (1.0, 0.0)], box_yaw=math.pi / 2))[0].tolist() == pytest.approx([1, -1])
    # ...turned by 30 deg, the face behind has normal (cos 30, sin 30): <(1, 0), n> = cos 30.
    agent_behind = (-math.cos(math.pi / 6), -math.sin(math.pi / 6))
    value = term("ocb")(inputs([agent_behind, (5.0, 5.0)], box_yaw=math.pi / 6))
    assert value[0, 0].item() == pytest.approx(math.cos(math.pi / 6), abs=1e-5)


def test_expanded_ocb_rotates_the_target_direction_by_half_the_box_yaw():
    # Box yaw 30 deg, target along +x: u is rotated by +15 deg; the face behind has normal at 30 deg.
    agent_behind = (-math.cos(math.pi / 6), -math.sin(math.pi / 6))
    value = term("ocb")(inputs([agent_behind, (5.0, 5.0)], box_yaw=math.pi / 6, expanded=True))
    norm = math.hypot(3.01, 0.01)  # MAPush normalises by ||(target - box) + 0.01||
    expected = (3.0 / norm) * math.cos(math.pi / 12)
    assert value[0, 0].item() == pytest.approx(expected, abs=1e-4)


def test_bonuses_are_shared_and_scaled():
    reward_fn = RewardFunction(RewardConfig(), 2, torch.device("cpu"))
    rewards, terms = reward_fn(inputs([(-1, 0), (1, 0)], success=True, exception=True),
                               torch.full((1, 2), 0.5), torch.full((1, 2), 0.5))
    k = {name: i for i, name in enumerate(REWARD_TERMS)}
    assert terms[0, :, k["reach_target"]].tolist() == [10.0, 10.0]
    assert terms[0, :, k["exception"]].tolist() == [-5.0, -5.0]
    assert rewards[0].tolist() == pytest.approx(terms[0].sum(-1).tolist())


def test_per_agent_scales_and_live_changes():
    config = RewardConfig(per_agent_scales={"agent_1": {"ocb": 0.008}})
    reward_fn = RewardFunction(config, 2, torch.device("cpu"))
    half = torch.full((1, 2), 0.5)
    _, terms = reward_fn(inputs([(-1.0, 0.0), (-1.0, 0.3)]), half, half)
    k = REWARD_TERMS.index("ocb")
    assert terms[0, :, k].tolist() == pytest.approx([0.004, 0.008])
    reward_fn.set_scales({"agent_0": {"ocb": 0.1}})
    _, terms = reward_fn(inputs([(-1.0, 0.0), (-1.0, 0.3)]), half, half)
    assert terms[0, :, k].tolist() == pytest.approx([0.1, 0.008])
    assert reward_fn.scales_dict()["agent_0"]["ocb"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown term 'bogus'"):
        reward_fn.set_scales({"bogus": 1.0})
    assert reward_fn.scales_dict()["agent_0"]["ocb"] == pytest.approx(0.1), "a rejected update changes nothing"


def test_contribution_mode_splits_team_progress_by_contact_share():
    shared = RewardFunction(RewardConfig(), 2, torch.device("cpu"))
    contribution = RewardFunction(RewardConfig(attribution="contribution"), 2, torch.device("cpu"))
    step_share = torch.tensor([[1.0, 0.0]])  # agent 0 pushes alone
    episode_share = torch.tensor([[0.75, 0.25]])
    x = inputs([(-1, 0), (1, 0)], box_vel=(0.3, 0.0), success=True, now=1.9)
    _, a = shared(x, step_share, episode_share)
    _, b = contribution(x, step_share, episode_share)
    k = {name: i for i, name in enumerate(REWARD_TERMS)}
    for name in ("distance_to_target", "push"):
        assert b[0, :, k[name]].tolist() == pytest.approx([2 * a[0, 0, k[name]].item(), 0.0])
        assert b[0, :, k[name]].sum().item() == pytest.approx(a[0, :, k[name]].sum().item()), "team total kept"
    assert b[0, :, k["reach_target"]].tolist() == pytest.approx([15.0, 5.0])
    for name in ("exception", "approach_to_box", "collision", "ocb"):
        torch.testing.assert_close(b[0, :, k[name]], a[0, :, k[name]])


def test_own_push_pays_each_agent_for_its_own_force_while_the_box_moves_to_the_target():
    def own_push(forces, box_vel):
        x = inputs([(-1, 0), (-1, 0.5)], box_vel=box_vel)
        x.agent_box_force = torch.tensor([forces])
        return term("own_push")(x)[0].tolist()

    assert own_push([3.0, 0.0], (0.3, 0.0)) == pytest.approx([0.5, 0.0])  # the idle robot earns nothing
    assert own_push([40.0, 20.0], (0.3, 0.0)) == pytest.approx([1.0, 1.0])  # capped at 6 N
    assert sum(own_push([6.5, 6.5], (0.3, 0.0))) == pytest.approx(2 * sum(own_push([13.0, 0.0], (0.3, 0.0))))
    assert own_push([40.0, 20.0], (-0.3, 0.0)) == [0.0, 0.0]  # the box moves away from the target
    assert own_push([40.0, 20.0], (0.0, 0.3)) == [0.0, 0.0]  # sideways
    assert RewardConfig().scales.own_push == 0.0, "off by default: the reward stays MAPush's"


def test_joint_push_pays_the_team_only_while_both_robots_push_toward_the_target():
    def joint_push(forces, box_vel=(0.3, 0.0)):
        x = inputs([(-1, 0), (-1, 0.5)], box_vel=box_vel)
        x.agent_box_force = torch.tensor([forces])
        return term("joint_push")(x)[0].item()

    assert joint_push([13.0, 0.0]) == 0.0  # one robot pushing alone earns the team nothing
    assert joint_push([10.0, 3.0]) == pytest.approx(0.5)  # the weaker robot's share of the 6 N
    assert joint_push([6.5, 6.5]) == joint_push([40.0, 20.0]) == 1.0  # both at 6 N or more: full pay
    assert joint_push([6.5, 6.5], (-0.3, 0.0)) == joint_push([6.5, 6.5], (0.0, 0.3)) == 0.0  # away, sideways
    assert RewardConfig().scales.joint_push == 0.0, "off by default: the reward stays MAPush's"
    rewards = RewardFunction(RewardConfig.model_validate({"scales": {"joint_push": 1.0}}), 2, torch.device("cpu"))
    x = inputs([(-1, 0), (-1, 0.5)], box_vel=(0.3, 0.0))
    x.agent_box_force = torch.tensor([[10.0, 3.0]])
    _, terms = rewards(x, torch.tensor([[0.77, 0.23]]), torch.tensor([[0.77, 0.23]]))
    assert terms[0, :, REWARD_TERMS.index("joint_push")].tolist() == pytest.approx([0.5, 0.5]), "to both robots"


def earned_by_the_scripted_pair(term: str, walk_away: tuple[int, ...]) -> torch.Tensor:
    """(envs, agents) sum of `term` (scale 1) over 400 steps of the scripted pushers in 8 real MuJoCo envs."""
    from mapush_rllib.sim.config import SimConfig
    from mapush_rllib.task.scripted import ScriptedPushPolicy
    from mapush_rllib.task.vec_env import MAPushVecEnv

    rewards = RewardConfig.model_validate({"scales": {term: 1.0}})  # terms come scaled
    env = MAPushVecEnv(SimConfig(num_envs=8, num_threads=1), rewards=rewards, seed=0)
    policy = ScriptedPushPolicy(walk_away=walk_away)
    env.reset(seed=0)
    earned = torch.zeros(env.num_envs, 2)
    with torch.no_grad():
        for _ in range(400):
            earned += env.step(policy(env.obs, env.episode_box_size)).reward_terms[..., REWARD_TERMS.index(term)]
    return earned


@pytest.mark.parametrize("walk_away", [(), (1,)])
def test_own_push_on_the_simulator_pays_the_robots_that_push(walk_away):
    """Real MuJoCo contacts: with both scripted robots pushing both earn own_push; a robot that walks away none."""
    earned = earned_by_the_scripted_pair("own_push", walk_away)
    pushers = [i for i in range(2) if i not in walk_away]
    assert (earned[:, pushers].sum(dim=0) > 10).all(), earned  # tens of steps at full force, in 8 envs
    for idle in walk_away:
        assert earned[:, idle].sum() < 0.05 * earned[:, pushers].sum(), earned


@pytest.mark.parametrize("walk_away", [(), (1,)])
def test_joint_push_on_the_simulator_pays_a_team_that_pushes_together_and_not_a_freeloading_one(walk_away):
    """Real MuJoCo contacts: the scripted pair earns joint_push; with one robot walking away the team earns ~none."""
    earned = earned_by_the_scripted_pair("joint_push", walk_away)
    torch.testing.assert_close(earned[:, 0], earned[:, 1])  # a team term: the same to both
    if walk_away:
        assert earned.sum() < 0.5, earned
    else:
        assert earned[:, 0].sum() > 10, earned
