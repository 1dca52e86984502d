"""Train from an experiment file: `python -m population.run CONFIG [--storage DIR] [--set KEY=VALUE] [--dry-run]`.

One Ray Tune trial of `MAPushPPO` (two separate policies by default) on the configured simulator. The
trial directory under `<storage>/<run.name>/` holds `progress.csv`, `result.json`, TensorBoard event files
and `checkpoint_*/` folders; `python -m mapush_rllib.evaluate --policy <that directory>` evaluates the
newest checkpoint.

An invalid file prints one line per problem and exits with status 2 before Ray starts; nothing is written.
`--dry-run` validates, builds the RLlib config and prints the resolved experiment, without training.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from population.config import ExperimentConfig, ExperimentConfigError, load_experiment

EXIT_INVALID_CONFIG = 2
EXIT_TRIAL_FAILED = 1


def build_algorithm_config(experiment: ExperimentConfig):
    """The PPOConfig of one member: the experiment's sections plus the run's resources."""
    from mapush_rllib.training import build_ppo_config
    from population.curriculum_hooks import ppo_config_options

    resources = experiment.run.resources
    config = build_ppo_config(
        experiment.training, experiment.simulator, experiment.task, experiment.rewards, seed=experiment.run.seed,
        **ppo_config_options(experiment.curriculum),
    )
    return (
        config.resources(num_cpus_for_main_process=resources.cpus)
        .learners(num_cpus_per_learner=resources.cpus, num_gpus_per_learner=resources.gpus)
        .env_runners(num_cpus_per_env_runner=resources.cpus_per_env_runner)
    )


def stop_condition(experiment: ExperimentConfig):
    """Tune stopper: True once any configured limit is reached."""
    stop = experiment.run.stop

    def should_stop(trial_id: str, result: dict) -> bool:
        steps = result.get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0)
        return bool(
            (stop.training_iterations is not None and result["training_iteration"] >= stop.training_iterations)
            or (stop.env_steps is not None and steps >= stop.env_steps)
            or (stop.time_s is not None and result.get("time_total_s", 0.0) >= stop.time_s)
        )

    return should_stop


def train(experiment: ExperimentConfig, algorithm_config) -> int:
    """Run the Tune trial; returns the process exit status."""
    import ray
    from ray import tune

    run = experiment.run
    storage = Path(run.storage).resolve()
    ray.init(num_cpus=run.resources.ray_num_cpus, include_dashboard=run.dashboard, log_to_driver=True)
    try:
        tuner = tune.Tuner(
            algorithm_config.algo_class,  # the class, not a name: a string makes Tune import every algorithm
            param_space=algorithm_config,
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(
                name=run.name,
                storage_path=str(storage),
                stop=stop_condition(experiment),
                checkpoint_config=tune.CheckpointConfig(
                    checkpoint_frequency=run.checkpoint_every_iterations,
                    checkpoint_at_end=True,
                    num_to_keep=run.checkpoints_to_keep,
                ),
                verbose=1,
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    result = results[0]
    if result.error is not None:
        print(f"error: the trial failed: {result.error}", file=sys.stderr)
        return EXIT_TRIAL_FAILED
    metrics = result.metrics or {}
    summary = {
        "trial_dir": result.path,
        "checkpoint": result.checkpoint.path if result.checkpoint else None,
        "training_iteration": metrics.get("training_iteration"),
        "env_steps": metrics.get("env_runners", {}).get("num_env_steps_sampled_lifetime"),
        "success_rate": metrics.get("env_runners", {}).get("mapush", {}).get("success_rate"),
    }
    print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="experiment YAML (see configs/)")
    parser.add_argument("--storage", help="directory for run outputs (overrides run.storage; default runs/)")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the experiment; do not train")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override a setting of the file, value in YAML, e.g. --set curriculum.enabled=false (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        experiment = load_experiment(args.config, storage=args.storage, overrides=args.overrides)
        algorithm_config = build_algorithm_config(experiment)
    except (ExperimentConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    if args.dry_run:
        print(json.dumps(experiment.model_dump(mode="json"), indent=2))
        return 0
    return train(experiment, algorithm_config)


if __name__ == "__main__":
    sys.exit(main())
