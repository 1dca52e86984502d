"""The evaluation beside the member: the calculator protocol on a frozen copy of its policies, in a process of its own.

On a GPU shared by several members, the blocking evaluation stops a member for ~1,000 sequential env steps at each
decision: 30-34 % of its time at `configs/pbt_gpu.yaml` under CUDA MPS (benchmarks/RESULTS.md). With
`evaluation.asynchronous`, the member hands a copy of its policies to this process `lead_iterations` before the
decision and trains on; at the decision it collects the result, waiting only if it is late. Under MPS the two
processes' kernels run side by side. The process runs the same code as the blocking evaluation and as
`python -m mapush_rllib.evaluate` (`evaluate_team` with `CheckpointPolicy`) on the same backend and device, so a
result equals `evaluate --policy <the checkpoint of the evaluated iteration>`.

The process is started with `spawn` (a CUDA context cannot be forked), inherits the member's environment (its
GPU), builds its evaluation batch once, and ends when the member closes the pipe, or dies (end of file).
"""

from __future__ import annotations

import copy
import itertools
import multiprocessing
import time
import traceback
from typing import Any

import torch

from mapush_rllib.checkpoint_policy import CheckpointPolicy
from mapush_rllib.task.calculator import evaluate_team, evaluation_env

#: How long a member waits for a pending evaluation before it gives up on the process (a hung GPU context, say) and
#: evaluates in its own process: far longer than any evaluation measured (~10 s on a shared GPU, ~20 s on 2 cores).
COLLECT_TIMEOUT_S = 900.0


class EvaluationProcessError(RuntimeError):
    """The evaluation process failed, ended or hung; the message says which (with its traceback if it failed)."""


class EvaluationProcess:
    """A process that evaluates the policies it is sent, one request after the other.

    Args:
        sections: (sim, task, rewards) of the member (`mapush_rllib.env.env_sections`).
        num_envs, seed, contribution: the evaluation's settings (`EvaluationConfig`).
    """

    def __init__(self, sections: tuple, *, num_envs: int, seed: int, contribution: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=serve, args=(child, sections, num_envs, seed, contribution), name="mapush-evaluation", daemon=True
        )
        self._process.start()
        child.close()
        self.pending: int | None = None  # the iteration whose policies are being evaluated, if any
        self.handover_s = 0.0  # the member's time to hand the pending request over (copy and send)
        self._request_ids = itertools.count()
        self._pending_id: int | None = None

    def submit(self, modules: dict[str, Any], agent_modules: dict[str, str], iteration: int) -> None:
        """Evaluate a copy of these modules (taken now, on the CPU) as the policies of `iteration`."""
        started = time.perf_counter()
        frozen = {module_id: copy.deepcopy(module).cpu() for module_id, module in modules.items()}
        request_id = next(self._request_ids)
        try:
            self._conn.send((request_id, frozen, agent_modules))
        except OSError as error:  # a broken pipe: the process died
            raise EvaluationProcessError(f"the evaluation process ended (exit code {self._process.exitcode}): "
                                         f"{error}") from None
        self.pending, self._pending_id = iteration, request_id
        self.handover_s = time.perf_counter() - started

    def forget(self) -> None:
        """The pending evaluation is of policies the member no longer has (it was restored): its result is dropped."""
        self.pending = self._pending_id = None

    def collect(self, iteration: int, timeout_s: float = COLLECT_TIMEOUT_S) -> tuple[dict[str, float], int, float]:
        """(metrics, episodes, wall time of the protocol) of the policies of `iteration`; waits for them.

        Raises EvaluationProcessError if the process failed on them, ended, or did not answer within `timeout_s`
        (it is then killed: a hung process is not waited for twice)."""
        if self.pending != iteration:
            raise ValueError(f"no evaluation of iteration {iteration} is pending (pending: {self.pending})")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                    self.close()
                    raise EvaluationProcessError(
                        f"the evaluation process did not report on iteration {iteration} within {timeout_s:.0f} s; "
                        "it was stopped"
                    )
                reply = self._conn.recv()
            except (EOFError, OSError):  # the other end closed, or was reset when the process died
                raise EvaluationProcessError(
                    f"the evaluation process ended (exit code {self._process.exitcode}) before reporting on "
                    f"iteration {iteration}"
                ) from None
            kind, request_id, *content = reply
            if request_id is not None and request_id != self._pending_id:
                continue  # a reply to a forgotten request
            if kind == "error":
                self.forget()
                raise EvaluationProcessError(f"the evaluation process failed:\n{content[0]}")
            metrics, episodes, seconds = content
            self.forget()
            return metrics, episodes, seconds

    def close(self) -> None:
        """Stop the process at once: it holds nothing worth finishing."""
        self._conn.close()
        if self._process.is_alive():
            self._process.kill()
        self._process.join()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode


def serve(conn: Any, sections: tuple, num_envs: int, seed: int, contribution: bool) -> None:
    """The process's loop: build the evaluation batch, then answer each request until the pipe closes. A reply
    carries its request's id (None: the batch could not be built, which every request then hears)."""
    torch.set_num_threads(1)
    try:
        env = evaluation_env(*sections, num_envs=num_envs, seed=seed, contribution=contribution)
    except Exception:
        conn.send(("error", None, traceback.format_exc()))
        return
    while True:
        request_id = None
        try:
            request_id, modules, agent_modules = conn.recv()
            started = time.perf_counter()
            policy = CheckpointPolicy(modules, agent_modules, env.device)
            metrics, team, _ = evaluate_team(env, policy, contribution=contribution)
            conn.send(("done", request_id, metrics, len(team), time.perf_counter() - started))
        except EOFError:  # the member closed the pipe or died
            break
        except Exception:
            try:
                conn.send(("error", request_id, traceback.format_exc()))
            except OSError:  # the member is gone
                break
    env.close()
