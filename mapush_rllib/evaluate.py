"""Evaluate a policy with the MAPush calculator protocol, and draw rollouts.

    python -m mapush_rllib.evaluate --policy scripted --num-envs 300 --seed 0 --json
    python -m mapush_rllib.evaluate --policy random --render random.gif
    python -m mapush_rllib.evaluate --policy runs/single/ --json      # newest checkpoint of a run

Protocol (MAPush `openrl_ws/test.py` "calculator", spec §4.2; `mapush_rllib.task.calculator`): N envs with one
seed, a deterministic policy, rolled out until every env has finished its *first* episode; metrics over those
first episodes. The same episodes are also played by each agent alone and by neither, which gives each agent's
Shapley contribution and the contribution balance (`--no-contribution` skips that, at a third of the cost).
A policy is `scripted` (the pushing controller), `random`, or an RLlib checkpoint / run directory; a
checkpoint is evaluated on its own run's task and reward sections unless `--config` names an experiment file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from pydantic import ValidationError

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.sim.schema import format_validation_error, load_yaml
from mapush_rllib.task.calculator import Policy, evaluate_team, evaluation_env
from mapush_rllib.task.config import RewardConfig, TaskConfig
from mapush_rllib.task.scripted import RandomPolicy, ScriptedPushPolicy


def load_policy(spec: str, seed: int) -> tuple[Policy, dict]:
    if spec == "scripted":
        return ScriptedPushPolicy(), {"policy": "scripted"}
    if spec == "random":
        return RandomPolicy(seed), {"policy": "random"}
    if not Path(spec).exists():
        raise FileNotFoundError(
            f"--policy: {spec!r} is neither 'scripted', 'random' nor an existing checkpoint or run directory"
        )
    from mapush_rllib.checkpoint_policy import load_checkpoint_policy

    return load_checkpoint_policy(spec)


def load_sections(path: str | None) -> tuple[SimConfig, TaskConfig, RewardConfig]:
    """The simulator, task and rewards sections of an experiment YAML (defaults without one)."""
    if path is None:
        return SimConfig(), TaskConfig(), RewardConfig()
    try:
        data = load_yaml(Path(path).read_text()) or {}
    except OSError as error:
        raise ValueError(f"--config: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"--config: {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config: {path} must be an experiment file (a mapping of sections), "
                         f"not a {type(data).__name__}")
    try:
        return (
            SimConfig.model_validate(data.get("simulator", {})),
            TaskConfig.model_validate(data.get("task", {})),
            RewardConfig.model_validate(data.get("rewards", {})),
        )
    except ValidationError as error:
        raise ValueError(f"{path}:\n{format_validation_error(error)}") from None


def check_render_path(path: str) -> None:
    """Before the evaluation runs: the animation's name ends in .gif and a file can be written in its folder."""
    out = Path(path)
    if out.suffix.lower() != ".gif":
        raise ValueError(f"--render: {path!r} must end in .gif (the animation is a GIF)")
    if out.is_dir():
        raise ValueError(f"--render: {path!r} is a folder; name the .gif to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as error:
        raise ValueError(f"--render: cannot write into {str(out.parent)!r}: {error.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="scripted", help="scripted | random | checkpoint or run directory")
    parser.add_argument("--num-envs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", help="experiment YAML whose simulator/task/rewards sections to use")
    parser.add_argument("--json", action="store_true", help="print one JSON object (and nothing else on stdout)")
    parser.add_argument("--render", metavar="OUT.gif", help="write an animation of the first envs' episodes "
                        "(env i is the same episode for any --num-envs; another --seed draws others)")
    parser.add_argument("--render-envs", type=int, default=4, help="how many envs to draw with --render")
    parser.add_argument("--no-contribution", action="store_true",
                        help="play the episodes with the whole team only (no Shapley contributions)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if args.num_envs < 1:
            raise ValueError("--num-envs must be at least 1")
        if args.render_envs < 1:
            raise ValueError("--render-envs must be at least 1")
        if args.render:
            check_render_path(args.render)
        sim, task, rewards = load_sections(args.config)
        policy, info = load_policy(args.policy, args.seed)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_sections = info.pop("run_sections", None)
    if run_sections is not None and args.config is None:
        task, rewards = run_sections
        print("task and rewards: the checkpoint's run's (--config to choose others)", file=sys.stderr)
    contribution = not args.no_contribution
    env = evaluation_env(sim, task, rewards, num_envs=args.num_envs, seed=args.seed, contribution=contribution)
    start = time.perf_counter()
    record = min(args.render_envs, args.num_envs) if args.render else 0
    metrics, stats, frames = evaluate_team(
        env, policy, contribution=contribution, record_envs=record, progress=not args.json
    )
    summary = {
        **info,
        "num_envs": args.num_envs,
        "seed": args.seed,
        "backend": sim.backend,
        **metrics,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }
    if args.render:
        by_env = {int(e): k for k, e in enumerate(stats.env_ids.tolist())}
        titles = []
        for e in range(record):
            k = by_env[e]
            outcome = "success" if stats.success[k] else ("exception" if stats.exception[k] else "timeout")
            titles.append(f"env {e}: {outcome} after {float(stats.length_steps[k]) * env.dt:.1f} s")
        from mapush_rllib.task.render import render_gif

        path = render_gif(frames, env.episode_box_size[:record].cpu().numpy(), args.render, titles=titles,
                          success_radius_m=task.success_radius_m, dt_s=env.dt,
                          agent_size_m=(sim.physics.agent_length_m, sim.physics.agent_width_m))
        summary["render"] = str(path)
    env.close()
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>32}: {value:.4g}" if isinstance(value, float) else f"{key:>32}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
