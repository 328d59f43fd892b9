"""Running one pass (an executor run over all its tasks) of datatrove tasks, locally or on Ray, so that it ends cleanly or stops the run.

- A pass with a task that failed or did not complete stops the run with one line naming the
  tasks and where their logs are; a rerun resumes (datatrove skips completed tasks).
- datatrove's task logs (pipeline, per-task stats, a failed task's traceback) go to the pass's
  log folder only, `<logging_dir>/logs/task_NNNNN.log` (its stats to `<logging_dir>/stats/`);
  the console gets aurora's own lines. `verbose` keeps datatrove's console output as well.
- Processes the local executor forks end with the run, however it ends: datatrove starts a
  `multiprocess` Manager (a forked server process) for its queue of worker slots, which would wait
  for connections forever after a SIGKILL of the run. Every process `multiprocess` forks asks the
  kernel (Linux `prctl(PR_SET_PDEATHSIG)`) to be killed when the process that forked it dies.
  Pool workers, started by a fork server, already exit when their pipes to the run close.
"""

import ctypes
import os
import signal
import sys
from contextlib import contextmanager

import multiprocess
from datatrove.executor import LocalPipelineExecutor
from datatrove.utils import logging as datatrove_logging
from loguru import logger
from multiprocess import util

from core.errors import AuroraError

_PR_SET_PDEATHSIG = 1
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


class LocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor whose tasks, in whatever process runs them, log to their files only."""

    def __init__(self, *args, quiet: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.quiet = quiet

    def _launch_run_for_rank(self, rank, ranks_q, completed=None, completed_lock=None):
        if multiprocess.parent_process() is not None:  # a pool worker: Ctrl-C is the run's to handle
            signal.signal(signal.SIGINT, signal.SIG_IGN)
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


def make_executor(kind: str, pipeline, tasks: int, workers: int, logging_dir: str, verbose: bool = False):
    if kind == "local":
        _end_children_with_this_process()
        return LocalExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, quiet=not verbose)
    if kind == "ray":
        import ray
        from datatrove.executor import RayPipelineExecutor

        if not ray.is_initialized():
            # RAY_ADDRESS set: join that cluster; otherwise start a local one with `workers` CPUs.
            if os.environ.get("RAY_ADDRESS"):
                ray.init(log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        return RayPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, cpus_per_task=1)
    raise AuroraError(f"unknown executor '{kind}' (expected local or ray)")


def run_pass(executor, name: str, logging_dir: str, verbose: bool = False) -> None:
    """Run one executor pass; a task that failed or did not complete stops the run in one line."""
    where = f"logs in {logging_dir}/logs; run again to resume"
    try:
        with _logs_in_files_only(quiet=not verbose):
            executor.run()
    except AuroraError:
        raise
    except Exception as e:  # noqa: BLE001 - a task's failure, whatever it was; its log has the traceback
        message = " ".join(str(e).split())[:300]
        raise AuroraError(f"{name}: a task failed ({type(e).__name__}: {message}); {where}") from None
    failed = executor.get_incomplete_ranks(range(executor.world_size))
    if failed:
        shown = ", ".join(map(str, failed[:10])) + (" ..." if len(failed) > 10 else "")
        raise AuroraError(f"{name}: {len(failed)} of {executor.world_size} tasks did not complete (ranks {shown}); {where}")
