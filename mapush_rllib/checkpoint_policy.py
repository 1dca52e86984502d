"""Trained policies from RLlib checkpoints, as plain batched callables for evaluation and rendering.

    policy, info = load_checkpoint_policy("runs/single/")        # newest checkpoint under a run directory
    actions = policy(obs, box_size_m)                            # (E, A, 8), (E,) -> (E, A, 3)

Only the RLModules are loaded (`learner_group/learner/rl_module` of the checkpoint), not the Algorithm:
no Ray, no env runners, no simulator. Actions are deterministic: the mean of each policy's Gaussian,
clipped to the action range, as RLlib's `explore=False` inference gives. A central-critic policy needs
only the 8-D observation (its actor never reads the global state).
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import torch

from mapush_rllib.checkpoints import (
    ALGORITHM_STATE,
    MANIFEST,
    CheckpointError,
    checkpoint_index,
    newest_complete,
    verify,
)
from mapush_rllib.env import env_sections
from mapush_rllib.task.config import AGENT_IDS, agent_index

MODULES_DIR = Path("learner_group") / "learner" / "rl_module"


def find_checkpoint(path: str | Path, what: str | None = "--policy") -> Path:
    """The Algorithm checkpoint at `path`, or under it (a trial or run directory) the complete checkpoint of the
    highest training iteration: a folder whose writing was cut short, or whose files are damaged, is passed over.
    `what` names the setting in error messages (None: the caller does)."""
    root = Path(path).expanduser().absolute()  # RLlib reads a relative path as a URI without a scheme
    prefix = f"{what}: " if what else ""
    if not root.exists():
        raise CheckpointError(f"{prefix}{str(path)!r} does not exist")
    if (root / ALGORITHM_STATE).is_file():
        if (root / MANIFEST).exists():
            verify(root)  # raises naming the missing or damaged file
        return root
    trial_dirs = {marker.parent.parent for marker in root.rglob(ALGORITHM_STATE)
                  if checkpoint_index(marker.parent) is not None}
    complete, passed_over = [], []
    for trial_dir in sorted(trial_dirs):
        newest, skipped = newest_complete(trial_dir)
        passed_over += skipped
        complete += [newest] if newest is not None else []
    for reason in passed_over:
        print(f"passed over {reason}", file=sys.stderr)
    if not complete:
        raise CheckpointError(
            f"{prefix}no complete checkpoint in {str(path)!r} (looked for checkpoint_* folders with {MANIFEST}"
            + (f"; passed over {len(passed_over)} incomplete or damaged" if passed_over else "") + ")"
        )
    return max(complete, key=lambda c: (c.training_iteration, checkpoint_index(c.path))).path


class CheckpointPolicy:
    """Deterministic actions of each agent's RLModule, batched over envs."""

    def __init__(self, modules: dict[str, Any], agent_modules: dict[str, str], device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.modules = {module_id: module.to(self.device).eval() for module_id, module in modules.items()}
        self.agent_modules = agent_modules
        self.agents_of = {
            module_id: [agent_index(aid) for aid, mid in agent_modules.items() if mid == module_id]
            for module_id in self.modules
        }

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, box_size_m: torch.Tensor | None = None) -> torch.Tensor:
        """obs (E, A, 8) -> actions (E, A, 3) in [-1, 1] on obs's device; box_size_m is not used."""
        from ray.rllib.core.columns import Columns

        x = obs.to(self.device, torch.float32)
        E, A = x.shape[:2]
        actions = None
        for module_id, agents in self.agents_of.items():
            module = self.modules[module_id]
            out = module.forward_inference({Columns.OBS: x[:, agents].reshape(E * len(agents), -1)})
            dist = module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            chosen = dist.to_deterministic().sample().reshape(E, len(agents), -1)
            if actions is None:
                actions = torch.empty((E, A, chosen.shape[-1]), device=self.device)
            actions[:, agents] = chosen
        return actions.clamp(-1.0, 1.0).to(obs.device)


def load_checkpoint_policy(path: str, device: str = "cpu") -> tuple[CheckpointPolicy, dict]:
    """(policy callable, info) from an RLlib checkpoint or a run/trial directory (newest checkpoint).

    info: policy "checkpoint", the checkpoint path, its training iteration and the agent -> module map.
    Raises CheckpointError (a FileNotFoundError) with one clear message when nothing loadable is there.
    """
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule

    from mapush_rllib.ray_compat import quiet_ray_notices

    quiet_ray_notices()  # RLlib's own deprecation warning when it builds the modules

    checkpoint = find_checkpoint(path)
    try:
        multi_module = MultiRLModule.from_checkpoint(checkpoint / MODULES_DIR)
        with open(checkpoint / "class_and_ctor_args.pkl", "rb") as f:
            config = pickle.load(f)["ctor_args_and_kwargs"][0][0]  # the AlgorithmConfig as a dict
        with open(checkpoint / ALGORITHM_STATE, "rb") as f:
            iteration = pickle.load(f).get("training_iteration")
    except Exception as error:  # a truncated or foreign checkpoint: say which one
        raise CheckpointError(f"--policy: cannot load the policies of {str(checkpoint)!r}: {error}") from error
    agent_modules = {aid: config["policy_mapping_fn"](aid, None) for aid in AGENT_IDS}
    missing = sorted(set(agent_modules.values()) - set(multi_module.keys()))
    if missing:
        raise CheckpointError(f"--policy: {str(checkpoint)!r} has no module(s) {missing} for its agents")
    modules = {module_id: multi_module[module_id] for module_id in set(agent_modules.values())}
    info = {
        "policy": "checkpoint",
        "checkpoint": str(checkpoint),
        "training_iteration": iteration,
        "agent_modules": agent_modules,
        "central_critic": bool(config["env_config"].get("central_critic", False)),
        # the task and rewards the run trained on (not printed: `evaluate` takes them out)
        "run_sections": env_sections(config["env_config"])[1:],
    }
    return CheckpointPolicy(modules, agent_modules, device), info


def checkpoint_module_states(path: str | Path, module_ids: list[str], what: str) -> dict[str, dict]:
    """{module id: RLModule state} of these modules from the checkpoint at or under `path` (`find_checkpoint`),
    loaded without Ray running; raises CheckpointError naming `what` when a module is missing or unreadable."""
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule

    checkpoint = find_checkpoint(path, what)
    try:
        multi_module = MultiRLModule.from_checkpoint(checkpoint / MODULES_DIR)
    except Exception as error:
        raise CheckpointError(f"{what}: cannot load the policies of {str(checkpoint)!r}: {error}") from error
    missing = sorted(set(module_ids) - set(multi_module.keys()))
    if missing:
        raise CheckpointError(f"{what}: {str(checkpoint)!r} has no module(s) {missing} (it has "
                              f"{sorted(multi_module.keys())}); start from a run with the same policies")
    return {module_id: multi_module[module_id].get_state() for module_id in module_ids}


class StartFromCheckpoint:
    """`on_algorithm_init` callback: the member's policies start from a trained checkpoint's weights (value
    functions included; not its optimizer or curriculum state), e.g. a team trained where one robot cannot push
    alone, then trained on the full task. A resumed or PBT-restored member then loads its own checkpoint over
    them, as Tune restores after the algorithm is built."""

    def __init__(self, checkpoint: str, what: str = "run.initial_policy") -> None:
        self.checkpoint, self.what = checkpoint, what

    def __call__(self, *, algorithm: Any, **kwargs: Any) -> None:
        states = checkpoint_module_states(self.checkpoint, list(algorithm.config.policies), self.what)
        try:
            algorithm.learner_group.set_weights(states)
        except Exception as error:  # other layer sizes or observation size
            raise CheckpointError(f"{self.what}: the policies of {self.checkpoint!r} do not fit this run's "
                                  f"model (training.model and the observations must match): {error}") from error
        algorithm.env_runner_group.sync_weights(from_worker_or_learner_group=algorithm.learner_group,
                                                inference_only=True)
        # RLlib's sync drops its request to a remote runner that still has one in flight (the algorithm's own
        # first sync), which then samples its first rollout with random weights: set them there and wait.
        from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE

        learner_state = algorithm.learner_group.get_state(
            components=[f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}"], inference_only=True
        )[COMPONENT_LEARNER]
        weights = {COMPONENT_RL_MODULE: learner_state[COMPONENT_RL_MODULE]}
        algorithm.env_runner_group.foreach_env_runner(lambda runner: runner.set_state(weights), local_env_runner=False)
