"""Running one pass (an executor run over all its tasks) of datatrove tasks, locally or on Ray, so that it ends cleanly or stops the run.

- A pass with a task that failed or did not complete stops the run with one line naming the
  tasks, the first error and where their logs are (with the folder's protocol); a rerun resumes
  (datatrove skips completed tasks). After a failure no new task starts; the local executor
  stops its running tasks at once, Ray lets them finish.
- On Ray (`RayExecutor`), the project's code and the driver's storage settings reach every worker
  of a cluster (`RAY_ADDRESS`) through Ray's runtime_env (`runtime_env`), so its nodes need only
  Ray and the project's dependencies. Without `RAY_ADDRESS`, a cluster of this machine's starts
  with the run (`start_ray`).
- datatrove's task logs (pipeline, per-task stats, a failed task's traceback) go to the pass's
  log folder only, `<logging_dir>/logs/task_NNNNN.log` (its stats to `<logging_dir>/stats/`);
  the console gets aurora's own lines and, on a terminal, a progress bar per pass
  (`PassProgress`). `verbose` keeps datatrove's console output instead of the bars.
- Processes the local executor forks end with the run, however it ends: datatrove starts a
  `multiprocess` Manager (a forked server process) for its queue of worker slots, which would wait
  for connections forever after a SIGKILL of the run. Every process `multiprocess` forks asks the
  kernel (Linux `prctl(PR_SET_PDEATHSIG)`) to be killed when the process that forked it dies.
  Pool workers, started by a fork server, already exit when their pipes to the run close.
"""

import ctypes
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager

import multiprocess
from datatrove.executor import LocalPipelineExecutor
from datatrove.executor.base import DistributedEnvVars, PipelineExecutor
from datatrove.utils import logging as datatrove_logging
from loguru import logger
from multiprocess import forkserver, util

from core.allocator import arrow_from_the_c_allocator, large_blocks_unmapped
from core.errors import AuroraError

_PR_SET_PDEATHSIG = 1
TASK_RETRIES = 3  # a task lost with its worker or node is run again, this many times at most
CONNECT_TIMEOUT_S = 10
FORWARDED_ENV = ("AWS_", "FSSPEC_", "AURORA_")
PACKAGES = ("core", "filters", "manifests", "readers", "dedup", "run", "pipeline")  # the run path's code: every package it imports
# Everything a pass's steps import, with what they import only where the work is done (HTML
# extraction's trafilatura), so that the run's own process skips it.
PRELOADED = ["pipeline.passes", "pipeline.mix.run", "trafilatura"]
_LOG_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"


def _task_log_only(folder, rank, local_rank=0, node_rank=-1):
    """datatrove's `add_task_logger` without its console sink. A log that cannot be written (a
    full disk) fails the task like any other write, instead of printing loguru's report."""
    logger.remove()
    logfile = folder.open(f"logs/task_{rank:05d}.log", "w")
    logger.add(logfile, level="DEBUG", format=_LOG_FORMAT, colorize=False, catch=False)
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


def _close_task_log(logfile) -> None:
    logger.complete()
    logger.remove()
    logfile.close()


@contextmanager
def _logs_in_files_only(quiet: bool = True):
    """For the block, datatrove logs to its task log files only, not to the console."""
    import datatrove.executor.base as base

    if not quiet or base.add_task_logger is _task_log_only:  # verbose, or already so in this process
        yield
        return
    originals = base.add_task_logger, base.close_task_logger
    base.add_task_logger, base.close_task_logger = _task_log_only, _close_task_log
    logger.remove()
    try:
        yield
    finally:
        base.add_task_logger, base.close_task_logger = originals
        datatrove_logging.setup_default_logger()


def _tokenizer_threads(cpus: int) -> None:
    """The tokenizer's thread pool (rayon's, made at a process's first batch) has a thread per CPU
    of the machine, in every worker at once: it gets the task's CPUs instead, unless the environment
    sets its size. 10,000 generated documents tokenized by two processes at once on two cores, in
    batches of 1,000: 11% (en) and 15% (hi) less CPU, 7% and 15% less time (median of 6 runs)."""
    os.environ.setdefault("RAYON_NUM_THREADS", str(cpus))


class LocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor whose tasks, in whatever process runs them, log to their files only."""

    def __init__(self, *args, quiet: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.quiet = quiet

    def _launch_run_for_rank(self, rank, ranks_q, completed=None, completed_lock=None):
        if multiprocess.parent_process() is not None:  # a pool worker: Ctrl-C is the run's to handle
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _tokenizer_threads(max(1, len(os.sched_getaffinity(0)) // self.workers))
            large_blocks_unmapped()  # forked from the fork server, whose imports raised the threshold
        with _logs_in_files_only(self.quiet):
            return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)


class _Registration:
    """What `multiprocess` keeps (weakly) for its after-fork hooks; one per process."""


_registration: _Registration | None = None


def _die_with_parent(_) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = multiprocess.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the request took effect
        os._exit(1)


def _end_children_with_this_process() -> None:
    global _registration
    if _registration is None and sys.platform == "linux":
        _registration = _Registration()
        util.register_after_fork(_registration, _die_with_parent)


class RayExecutor(PipelineExecutor):
    """Each task of a pass is one Ray task, at most `workers` at a time over the whole cluster.

    Not datatrove's `RayPipelineExecutor`, which makes a placement group and a new actor (a new
    process, which imports everything again) for every task: about 2.5 s per task, three times the
    local executor's time on the demo. Ray reuses its worker processes across tasks and passes, so a
    small task costs milliseconds. A task lost with its worker or its node (a killed raylet) is
    retried by Ray on another; a task that raised is not (it would fail the same way): no new task
    starts after it, and the pass stops once the running ones are done."""

    def __init__(self, pipeline, tasks: int, workers: int, logging_dir: str, quiet: bool = True):
        super().__init__(pipeline, logging_dir=logging_dir)
        self.tasks, self.workers, self.quiet = tasks, workers, quiet

    @property
    def world_size(self) -> int:
        return self.tasks

    def get_distributed_env(self, node_rank: int = -1) -> DistributedEnvVars:
        return DistributedEnvVars(datatrove_node_ips="", datatrove_cpus_per_task="1", datatrove_mem_per_cpu="0",
                                  datatrove_gpus_on_node="0", datatrove_executor="RAY")

    def run(self) -> None:
        import ray

        ranks = self.get_incomplete_ranks(range(self.world_size))
        if not ranks:
            return
        self.save_executor_as_json()
        executor = ray.put(self)
        task = ray.remote(_run_rank).options(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)
        waiting, running, errors = list(reversed(ranks)), {}, {}
        while running or (waiting and not errors):  # after a failure, no new task starts
            while waiting and len(running) < self.workers and not errors:
                rank = waiting.pop()
                running[task.remote(executor, rank)] = rank
            done, _ = ray.wait(list(running), num_returns=1)
            rank = running.pop(done[0])
            try:
                ray.get(done[0])
            except Exception as e:  # noqa: BLE001 - the task's own error, or Ray's when its retries ran out
                errors[rank] = getattr(e, "cause", None) or e
        if errors:  # the first task's own error; run_pass names every task that did not complete
            raise errors[min(errors)]


def _run_rank(executor: RayExecutor, rank: int) -> None:
    _tokenizer_threads(1)  # the task's num_cpus
    large_blocks_unmapped()
    with _logs_in_files_only(executor.quiet):
        executor._run_for_rank(rank)


def runtime_env() -> dict:
    """What every Ray worker needs that only this process has: the project's code and the settings
    of its storage (`AWS_*`, `FSSPEC_*`) and of aurora (`AURORA_*`). Nothing else of the environment
    goes, so a node's own settings (paths, threads) stay its own."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    packages = [importlib.util.find_spec(name).submodule_search_locations[0] for name in PACKAGES]
    return {"env_vars": env, "py_modules": packages, "excludes": ["__pycache__"]}


def _check_reachable(address: str) -> None:
    """A cluster address that does not answer is one line at once; Ray itself retries for minutes."""
    host_port = address.removeprefix("ray://").rsplit("/", 1)[0]
    if address == "auto" or ":" not in host_port:
        return
    host, port = host_port.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as e:
        raise AuroraError(f"cannot reach the Ray cluster at RAY_ADDRESS={address} ({e})") from None


_warm_up: list = []  # the warm-up tasks of this process's cluster (see start_ray)


def start_ray(workers: int, verbose: bool = False) -> None:
    """Join the cluster at RAY_ADDRESS, or start one on this machine with `workers` CPUs; once per
    process. Then each of `workers` workers imports the run's modules, while this process goes on
    preparing the run (checking assets, listing inputs), so the first tasks start warm.

    A cluster this process starts needs no runtime_env: its processes inherit this process's
    environment and run this Python, with this working directory on their path (Ray adds it), so
    they import the same code. Without one, Ray starts its workers with the cluster instead of after
    packaging and unpacking the code."""
    import ray

    if ray.is_initialized():
        return
    options = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        _check_reachable(address)
        options["runtime_env"] = runtime_env()
    else:
        arrow_from_the_c_allocator()  # a remote cluster's nodes keep their own setting
        options.update(num_cpus=workers, include_dashboard=False)
    try:
        ray.init(**options)
    except Exception as e:  # noqa: BLE001 - whatever Ray says, in one line
        raise AuroraError(f"cannot start or join Ray (RAY_ADDRESS={address or 'unset'}): {' '.join(str(e).split())[:300]}") from None
    warm = ray.remote(_import_run_modules).options(num_cpus=1)
    _warm_up.extend(warm.remote() for _ in range(workers))


def _import_run_modules() -> None:
    for name in PRELOADED:
        importlib.import_module(name)


def _preload_fork_server() -> None:
    """datatrove's pool workers are forked by a fork server, a fresh process that would import the
    run's modules again for every pass; imported once there, every pass's workers start warm."""
    _end_children_with_this_process()
    arrow_from_the_c_allocator()  # before the fork server imports Arrow
    multiprocess.get_context("forkserver").set_forkserver_preload(PRELOADED)


def start_executor(kind: str, workers: int, verbose: bool = False) -> None:
    """Start what will run the tasks before the run is prepared, so that it imports the run's
    modules while this process checks the assets and takes the cut-offs' samples: Ray's workers,
    or the local executor's fork server where tasks run in a pool (more than one worker; with one,
    they run in this process). The fork server's imports took about 2.3 s of a run's wall time on
    10,000 generated documents (`bench/curate.py`) when it started with the first pass."""
    if kind == "ray" and workers >= 1:
        start_ray(workers, verbose)
    elif kind == "local" and workers > 1:
        _preload_fork_server()
        forkserver.ensure_running()


def make_executor(kind: str, pipeline, tasks: int, workers: int, logging_dir: str, verbose: bool = False):
    if kind == "local":
        _preload_fork_server()
        return LocalExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, quiet=not verbose)
    if kind == "ray":
        start_ray(workers, verbose)
        return RayExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, quiet=not verbose)
    raise AuroraError(f"unknown executor '{kind}' (expected local or ray)")


class PassProgress:
    """A pass's progress bar on the console: tasks done of those the pass runs, documents per
    second, ETA. It reads what every task records when it completes, whatever ran it (a local
    worker, a Ray node): datatrove's `completions/<rank>` marker and `stats/<rank>.json` in the
    pass's log folder, listed every `interval` seconds by a thread of this process. Documents are
    those the pass's first counting step counted. Drawn only on a terminal (tqdm's default)."""

    def __init__(self, name: str, folder, ranks: list[int], interval: float = 0.5):
        from tqdm import tqdm

        self.folder, self.pending, self.interval = folder, set(ranks), interval
        self.documents, self.started = 0, time.monotonic()
        self.bar = tqdm(total=len(ranks), desc=name, unit="task", dynamic_ncols=True, disable=None)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)
        if not self.bar.disable:
            self.thread.start()

    def _follow(self) -> None:
        while not self.stopped.wait(self.interval):
            self.update()

    def update(self) -> None:
        try:
            self.folder.invalidate_cache("completions")  # object stores' listings are cached
            done = {int(path.rsplit("/", 1)[-1]) for path in self.folder.list_files("completions")} & self.pending
        except (OSError, ValueError):  # the folder not yet made, or a name not a rank: the next listing tells
            return
        for rank in sorted(done):
            self.documents += self._documents(rank)
        self.pending -= done
        if done:
            if self.documents:
                rate = self.documents / max(time.monotonic() - self.started, 1e-9)
                self.bar.set_postfix_str(f"{rate:,.0f} docs/s", refresh=False)
            self.bar.update(len(done))

    def _documents(self, rank: int) -> int:
        try:
            with self.folder.open(f"stats/{rank:05d}.json", "r") as f:
                steps = json.load(f)
        except (OSError, ValueError):
            return 0
        for step in steps:
            for key in ("documents", "total"):
                if key in step.get("stats", {}):
                    value = step["stats"][key]
                    return int(value["total"] if isinstance(value, dict) else value)
        return 0

    def close(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()
        self.update()
        self.bar.close()


def run_pass(executor, name: str, logging_dir: str, verbose: bool = False) -> None:
    """Run one executor pass; tasks that failed or did not complete stop the run in one line that
    names them, the first error, and the pass's log folder (with its protocol)."""
    error = ""
    progress = None if verbose else PassProgress(name, executor.logging_dir, executor.get_incomplete_ranks(range(executor.world_size)))
    try:
        with _logs_in_files_only(quiet=not verbose):
            executor.run()
    except AuroraError:
        raise
    except Exception as e:  # noqa: BLE001 - a task's failure, whatever it was; its log has the traceback
        error = f" ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
    finally:
        if progress is not None:
            progress.close()
    failed = executor.get_incomplete_ranks(range(executor.world_size))
    if failed or error:
        shown = ", ".join(map(str, failed[:10])) + (" ..." if len(failed) > 10 else "")
        raise AuroraError(f"{name}: {len(failed)} of {executor.world_size} tasks did not complete (ranks {shown}){error}; "
                          f"logs in {logging_dir}/logs; run again to resume")
