"""Train from an experiment file: one member, or a population with PBT.

    python -m population.run configs/pbt.yaml                  # a population (the file has a `pbt:` section)
    python -m population.run configs/single.yaml               # one member, no PBT
    python -m population.run configs/pbt.yaml --resume         # continue the newest run of this config
    python -m population.run configs/pbt.yaml --dry-run        # validate and print the resolved experiment
    python -m population.run configs/single.yaml --set curriculum.enabled=false   # override settings (YAML values)
    RAY_ADDRESS=ray://head:10001 python -m population.run configs/pbt.yaml   # on an existing Ray cluster

Each run is a Ray Tune experiment in `<storage>/<run.name>_<date>/` (storage: `--storage`, else `run.storage`,
default `runs/`), one trial directory per member with `progress.csv`, `result.json`, TensorBoard event files and
`checkpoint_*/` folders, plus Tune's PBT logs (`pbt_global.txt`, `pbt_policy_<trial>.txt`), the resolved
experiment (`experiment.yaml`) and the members' starting values (`population.json`).
`python -m population.report <that directory>` draws the lineage; `python -m mapush_rllib.evaluate --policy
<a trial directory>` evaluates a member's newest checkpoint.

An invalid file prints one line per problem and exits with status 2 before Ray starts; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import sys
from pathlib import Path

import yaml

from population import result_keys as keys
from population.config import ExperimentConfig, ExperimentConfigError, load_experiment
from population.resume import (
    EXPERIMENT_FILE,
    POPULATION_FILE,
    RESUMABLE_CHANGES,
    RunFolderError,
    RunLock,
    changed_settings,
    find_run,
    member_dirname,
    member_index,
    new_run_dir,
    recover,
    with_added_settings,
)
from population.tensorboard import write_layout

EXIT_INVALID_CONFIG = 2
EXIT_TRIAL_FAILED = 1
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) before every member reached run.stop, as a shell reports it


def build_algorithm_config(experiment: ExperimentConfig):
    """The PPOConfig of one member: the experiment's sections plus the run's resources, the member's own
    evaluation and its score (in that order: the score reads the evaluation)."""
    from mapush_rllib.evaluation import TeamEvaluation
    from mapush_rllib.training import build_ppo_config
    from population.curriculum_hooks import ppo_config_options
    from population.pbt_config import ScoreConfig
    from population.score import ScoreFunction

    resources = experiment.run.resources
    config = build_ppo_config(
        experiment.training, experiment.simulator, experiment.task, experiment.rewards, seed=experiment.run.seed,
        **ppo_config_options(experiment.curriculum),
    )
    score = experiment.pbt.score if experiment.pbt is not None else ScoreConfig()
    evaluation = TeamEvaluation(experiment.resolved_evaluation(), is_last=StopCondition(experiment).reached)
    return (
        config.resources(num_cpus_for_main_process=resources.cpus)
        .learners(num_cpus_per_learner=resources.cpus, num_gpus_per_learner=resources.gpus)
        .env_runners(num_cpus_per_env_runner=resources.cpus_per_env_runner)
        .callbacks(on_train_result=[evaluation, ScoreFunction(score, top_level=top_curriculum_level(experiment))],
                   on_algorithm_init=initial_policy(experiment, list(config.policies)))
    )


def initial_policy(experiment: ExperimentConfig, module_ids: list[str]):
    """The callback that loads `run.initial_policy`'s weights into each new member (None when unset), checked
    here, before Ray starts: the checkpoint is complete and has every policy of this run."""
    if experiment.run.initial_policy is None:
        return None
    from mapush_rllib.checkpoint_policy import StartFromCheckpoint, checkpoint_module_states, find_checkpoint
    from mapush_rllib.checkpoints import CheckpointError

    what = "run.initial_policy"
    try:
        checkpoint = find_checkpoint(experiment.run.initial_policy, what)
        checkpoint_module_states(checkpoint, module_ids, what)
    except CheckpointError as error:
        raise ExperimentConfigError(str(error)) from error
    return StartFromCheckpoint(str(checkpoint), what)


def top_curriculum_level(experiment: ExperimentConfig) -> int:
    """Index of the curriculum's top level (1 without a curriculum; `ScoreFunction` divides by at least 1)."""
    if not experiment.curriculum.enabled:
        return 1
    from curriculum import build_level_table

    return build_level_table(experiment.curriculum, experiment.task, experiment.simulator.physics).num_levels - 1


class StopCondition:
    """Tune stopper: a member stops once any configured limit is reached (picklable, for `--resume`)."""

    def __init__(self, experiment: ExperimentConfig) -> None:
        stop = experiment.run.stop
        self.iterations, self.env_steps, self.time_s = stop.training_iterations, stop.env_steps, stop.time_s

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.reached(result)

    def reached(self, result: dict) -> bool:
        """True once `result` meets any configured limit."""
        steps = keys.result_value(result, keys.ENV_STEPS, 0)
        return bool(
            (self.iterations is not None and result.get("training_iteration", 0) >= self.iterations)
            or (self.env_steps is not None and steps >= self.env_steps)
            or (self.time_s is not None and result.get("time_total_s", 0.0) >= self.time_s)
        )


# ---------------------------------------------------------------------------------------------------- Ray


def free_dashboard_port(preferred: int, tries: int = 20) -> int:
    """`preferred`, or the next port above it that nothing listens on: a second run on the same machine
    (each starts its own local Ray) would otherwise die in `ray.init` because the first holds 8265."""
    for port in range(preferred, min(preferred + tries, 65536)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port != preferred:
                print(f"Port {preferred} is taken (another Ray dashboard?); this run's dashboard uses {port}")
            return port
    raise SystemExit(f"error: run.dashboard_port: ports {preferred}-{preferred + tries - 1} are all taken; "
                     "set run.dashboard_port to a free port or run.dashboard=false")


def start_ray(experiment: ExperimentConfig, address: str | None) -> None:
    """Connect to `address` (or $RAY_ADDRESS), else start a local Ray, with the dashboard if configured."""
    import ray

    run = experiment.run
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        context = ray.init(address=address, log_to_driver=True)
        print(f"Connected to the Ray cluster at {address}; dashboard: {context.dashboard_url or 'not running'}")
        return
    context = ray.init(
        num_cpus=run.resources.ray_num_cpus,
        include_dashboard=run.dashboard,
        dashboard_host="127.0.0.1",
        dashboard_port=free_dashboard_port(run.dashboard_port) if run.dashboard else run.dashboard_port,
        log_to_driver=True,
    )
    if run.dashboard:
        url = f"http://{context.dashboard_url}"
        auth = os.environ.get("RAY_AUTH_MODE", "token").lower()
        hint = ("\n  token authentication is on: when the page asks for a token, paste the output of "
                "`ray get-auth-token`\n  (RAY_AUTH_MODE=disabled before starting turns it off on a machine you "
                "alone use)" if auth == "token" else " (token authentication is off)")
        print(f"Ray dashboard: {url}{hint}", flush=True)


def check_members_fit(experiment: ExperimentConfig, algorithm_config, members: int) -> None:
    """Stop before training when the members cannot all run at once: Tune would leave some PENDING (forever, when
    not even one fits), and PBT compares members that train side by side. Reads the cluster Ray is connected to."""
    import ray

    per_member = algorithm_config.algo_class.default_resource_request(algorithm_config).required_resources
    cluster = ray.cluster_resources()
    if experiment.simulator.device.startswith("cuda") and cluster.get("GPU", 0.0) == 0:
        raise ExperimentConfigError(
            f"simulator.device: {experiment.simulator.device} but the Ray cluster has no GPU; use cpu, or run "
            "where a GPU is (run.resources.gpus: the share of one each member gets)")
    for resource, field in (("CPU", "run.resources.cpus / cpus_per_env_runner"), ("GPU", "run.resources.gpus")):
        need = members * per_member.get(resource, 0.0)
        have = cluster.get(resource, 0.0)
        if need > have + 1e-6:
            raise ExperimentConfigError(
                f"{field}: {members} member(s) x {per_member.get(resource, 0.0):g} {resource} = {need:g} {resource} "
                f"are needed at once and the Ray cluster has {have:g}; lower {field} (fractions share a device), "
                "training.num_env_runners or pbt.population_size"
                + (", or give Ray more CPUs (run.resources.ray_num_cpus)" if resource == "CPU" else "")
            )


#: Where a running CUDA MPS control daemon keeps its pipe (NVIDIA's default folder unless the variable is set).
MPS_PIPE_DIRECTORY_DEFAULT = "/tmp/nvidia-mps"


def mps_hint(experiment: ExperimentConfig, members: int, address: str | None) -> str | None:
    """One line for a local run whose members share a GPU without a CUDA MPS daemon: they then take turns on it,
    and under MPS they step side by side (benchmarks/RESULTS.md: 2.2-2.5x faster iterations on an H100)."""
    gpus = experiment.run.resources.gpus
    sharing = experiment.simulator.device.startswith("cuda") and 0 < gpus < 1 and members > 1
    if not sharing or address or os.environ.get("RAY_ADDRESS"):
        return None  # nothing shared, or a cluster whose machines this process cannot see
    pipe = Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", MPS_PIPE_DIRECTORY_DEFAULT))
    if (pipe / "control").exists():
        return None
    return (f"{members} members share each GPU (run.resources.gpus: {gpus:g}) and no CUDA MPS daemon is running "
            f"(no {pipe / 'control'}): they take turns on the GPU; started under `nvidia-cuda-mps-control -d` "
            "they step side by side (README, GPU: `source benchmarks/mps.sh && mps_start`)")


def make_tuner(experiment: ExperimentConfig, algorithm_config, path: Path, plan):
    """A new Tune experiment at `path`: one trial, or one per member under the PBT scheduler."""
    from ray import tune

    from mapush_rllib.ray_compat import SearchKeepingPausedProcesses
    from population.checkpoint_retention import KeepNewestAndBest
    from population.members import SCORE_METRIC, make_scheduler, param_space
    from population.table import CheckpointLines, PopulationTable
    from population.tune_logs import ProgressCsvLogger, ResultJsonLogger, TensorBoardLogger

    run = experiment.run
    if plan is None:
        space, tune_config = algorithm_config, tune.TuneConfig(num_samples=1, trial_dirname_creator=member_dirname)
    else:
        space = param_space(plan, algorithm_config)
        # reuse_actors: an exploited member continues in its own process (`MAPushPPO.reset_config`)
        scheduler = make_scheduler(plan)
        tune_config = tune.TuneConfig(scheduler=scheduler, metric=SCORE_METRIC, mode="max",
                                      search_alg=SearchKeepingPausedProcesses(scheduler.paused_to_continue),
                                      trial_dirname_creator=member_dirname, reuse_actors=True)
    return tune.Tuner(
        algorithm_config.algo_class,  # the class, not a name: a string makes Tune import every algorithm
        param_space=space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=path.name,
            storage_path=str(path.parent),
            stop=StopCondition(experiment),
            checkpoint_config=tune.CheckpointConfig(  # every one kept by Tune; KeepNewestAndBest deletes
                checkpoint_frequency=run.checkpoint_every_iterations,
                checkpoint_at_end=True,
            ),
            failure_config=tune.FailureConfig(max_failures=run.max_failures),
            progress_reporter=PopulationTable(top_curriculum_level(experiment), plan),
            callbacks=[ResultJsonLogger(), ProgressCsvLogger(), TensorBoardLogger(), CheckpointLines(),
                       *([KeepNewestAndBest(run.checkpoints_to_keep)] if run.checkpoints_to_keep else [])],
            verbose=1,
        ),
    )


def summarize(results, stop: StopCondition, resume_command: str) -> tuple[int, list[dict]]:
    """(exit status, one summary per member) of a Tune run that ended: finished, failed or interrupted."""
    from mapush_rllib.ray_compat import failed_trial_paths

    failed = failed_trial_paths(results)
    rows, status, unfinished = [], 0, []
    for result in results:
        metrics = result.metrics or {}
        member = (metrics.get("config") or {}).get("member", member_index(result.path))
        if result.path in failed:
            reason = str(result.error).strip().splitlines()[-1]  # the raised error, not Ray's wrapping of it
            print(f"error: member {member} failed: {reason}", file=sys.stderr)
            status = EXIT_TRIAL_FAILED
        elif "training_iteration" not in metrics or not stop.reached(metrics):
            unfinished.append(member)
        rows.append({
            "trial_dir": result.path,
            "member": member,
            "checkpoint": result.checkpoint.path if result.checkpoint else None,
            "training_iteration": metrics.get("training_iteration"),
            "env_steps": keys.result_value(metrics, keys.ENV_STEPS),
            "eval_success_rate": keys.result_value(metrics, keys.EVAL_SUCCESS_RATE),
            "eval_contribution_balance": keys.result_value(metrics, keys.EVAL_CONTRIBUTION_BALANCE),
            "eval_freeloading_index": keys.result_value(metrics, keys.EVAL_FREELOADING_INDEX),
            "score": keys.result_value(metrics, keys.SCORE),
            **best_checkpoint_summary(result.path),
        })
    if unfinished and status == 0:
        print(f"interrupted: member {', '.join(map(str, sorted(unfinished, key=str)))} stopped before run.stop; "
              + continue_with(resume_command), file=sys.stderr)
        status = EXIT_INTERRUPTED
    return status, rows


def best_checkpoint_summary(trial_dir: str) -> dict:
    """The member's complete checkpoint with the best evaluation of its own, and what that evaluation measured:
    training swings, so the newest checkpoint is not always the best one."""
    from population.checkpoint_retention import best_evaluated

    best = best_evaluated(trial_dir)
    if best is None:
        return {"best_checkpoint": None}
    return {
        "best_checkpoint": str(best.checkpoint.path),
        "best_checkpoint_iteration": best.checkpoint.training_iteration,
        "best_checkpoint_score": best.score,
        **{f"best_checkpoint_{key.replace('/', '_')}": keys.result_value(best.result, key)
           for key in (keys.EVAL_SUCCESS_RATE, keys.EVAL_CONTRIBUTION_BALANCE, keys.EVAL_FREELOADING_INDEX)},
    }


def prepare_run_dir(experiment: ExperimentConfig, resume: bool) -> tuple[Path, RunLock]:
    """The run folder, locked by this process: a new one, or (`resume`) the newest run of this experiment, checked
    against the experiment now and pointed at every member's newest complete checkpoint."""
    run = experiment.run
    storage = Path(run.storage).expanduser().resolve()
    if storage.exists() and not storage.is_dir():
        raise RunFolderError(f"run.storage (--storage): {storage} is a file; give a directory for the run folders")
    if not resume:
        try:
            path = new_run_dir(storage, run.name)
        except OSError as error:
            raise RunFolderError(f"run.storage (--storage): cannot make a run folder in {storage}: {error}") from None
        return path, RunLock(path)
    path = find_run(storage, run.name)
    if path is None:
        raise RunFolderError(f"--resume: no run of '{run.name}' under {storage}; start one without --resume")
    lock = RunLock(path)
    try:
        saved = yaml.safe_load((path / EXPERIMENT_FILE).read_text())
        changes = changed_settings(with_added_settings(saved), experiment.model_dump(mode="json"))
        if changes:
            raise RunFolderError(
                f"--resume: {path.name} was started with other settings; a resumed run keeps its experiment "
                f"(only {', '.join(RESUMABLE_CHANGES)} may change). Undo these, or start a new run:\n  "
                + "\n  ".join(changes)
            )
        try:
            members = recover(path, finished=StopCondition(experiment).reached)
        except FileNotFoundError as error:
            raise RunFolderError(f"--resume: {error}; start a new run") from None
    except BaseException:
        lock.release()
        raise
    print(f"Resuming {path}:\n" + "\n".join(member.describe() for member in members), flush=True)
    return path, lock


def continue_with(resume_command: str) -> str:
    return f"every checkpoint is kept. Continue with:\n  {resume_command}"


def interrupted_outside_tune(path: Path, resume: bool, resume_command: str) -> int:
    """Ctrl-C before Tune's handler was in place: a new run with no checkpoint yet leaves no folder behind."""
    if not resume and not any(path.glob("*/checkpoint_*")):
        shutil.rmtree(path, ignore_errors=True)
        print("interrupted before the first checkpoint: nothing to continue; the run folder is removed",
              file=sys.stderr)
    else:
        print("interrupted; " + continue_with(resume_command), file=sys.stderr)
    return EXIT_INTERRUPTED


def train(experiment: ExperimentConfig, algorithm_config, plan=None, *, resume: bool = False,
          address: str | None = None, resume_command: str = "python -m population.run <config> --resume") -> int:
    """Run (or resume) the experiment (`plan`: its population, None for one member); returns the exit status.
    `resume_command` is what an interrupted run tells the user to type."""
    import ray
    from ray import tune

    from mapush_rllib.ray_compat import quiet_ray_notices, store_only_the_newest_checkpoint_result

    try:
        path, lock = prepare_run_dir(experiment, resume)
    except RunFolderError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's reporter interface, with our table (table.py)
    quiet_ray_notices()
    store_only_the_newest_checkpoint_result()
    # Tune's experiment state (each member's config after exploits, its checkpoints) saved every 2 s rather than
    # every 10 s or more. A resume takes the checkpoints from disk anyway (`population.resume`); the config must be
    # the one of the newest checkpoint, which a member takes many iterations after an exploit to write.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    try:
        start_ray(experiment, address)
        try:
            members = plan.experiment.pbt.population_size if plan else 1
            check_members_fit(experiment, algorithm_config, members)
            if hint := mps_hint(experiment, members, address):
                print(hint, flush=True)
            if resume:
                tuner = tune.Tuner.restore(str(path), trainable=algorithm_config.algo_class,
                                           resume_unfinished=True, resume_errored=True)
            else:
                tuner = make_tuner(experiment, algorithm_config, path, plan)
                (path / EXPERIMENT_FILE).write_text(
                    yaml.safe_dump(experiment.model_dump(mode="json"), sort_keys=False))
                if plan is not None:
                    (path / POPULATION_FILE).write_text(json.dumps(plan.describe(), indent=2))
                write_layout(path)
                print(f"Experiment folder: {path}", flush=True)
            results = tuner.fit()
        except ExperimentConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            if not resume:
                shutil.rmtree(path)  # nothing ran: leave no empty run behind
            return EXIT_INVALID_CONFIG
        finally:
            ray.shutdown()
    except KeyboardInterrupt:  # Ctrl-C outside Tune's own handler (Ray starting, Tune not yet running)
        return interrupted_outside_tune(path, resume, resume_command)
    finally:
        lock.release()
    status, rows = summarize(results, StopCondition(experiment), resume_command)
    print(json.dumps({"experiment_dir": str(path), "members": rows}))
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="experiment YAML (see configs/)")
    parser.add_argument("--storage", help="directory for run outputs (overrides run.storage; default runs/)")
    parser.add_argument("--resume", action="store_true", help="continue the newest run of this config")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the experiment; do not train")
    parser.add_argument("--address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override a setting of the file, value in YAML, e.g. --set curriculum.enabled=false (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        experiment = load_experiment(args.config, storage=args.storage, overrides=args.overrides)
        plan = None
        if experiment.pbt is not None:
            from population.members import plan_population

            plan = plan_population(experiment)  # every mutated value written out, per agent and per policy
        algorithm_config = build_algorithm_config(plan.experiment if plan is not None else experiment)
    except (ExperimentConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    if args.dry_run:
        resolved = {"experiment": experiment.model_dump(mode="json")}
        if plan is not None:
            resolved["population"] = plan.describe()
        print(json.dumps(resolved, indent=2))
        return 0
    resume_command = shlex.join([
        "python", "-m", "population.run", args.config,
        *(["--storage", args.storage] if args.storage else []), *(["--address", args.address] if args.address else []),
        *(item for override in args.overrides for item in ("--set", override)), "--resume",
    ])
    return train(experiment, algorithm_config, plan, resume=args.resume, address=args.address,
                 resume_command=resume_command)


if __name__ == "__main__":
    sys.exit(main())
