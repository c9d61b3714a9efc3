"""Independent training jobs side by side in worker processes.

The experiments train many small models whose steps are small matrix products: one process with two
threads keeps two cores only partly busy, two processes with one thread each keep both busy.
:func:`run_jobs` runs ``fn(*args)`` for every job, in ``workers`` forked processes of
⌊torch threads / workers⌋ threads each, or here one by one (``workers=1``); results are the same up
to floating-point round-off (thread counts change the order of sums). Jobs must be independent (each
writes only its own checkpoint files) and their arguments and results picklable.
"""
from __future__ import annotations

import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Mapping

import torch
from tqdm.auto import tqdm

from bornmachine.validation import check_positive_int

__all__ = ["run_jobs", "default_workers"]


def default_workers() -> int:
    """Worker processes by default: one per core this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_jobs(fn: Callable, jobs: Mapping[str, tuple], *, workers: int = 1, done: Callable | None = None,
             cost: Callable[[str], float] | None = None, desc: str = "jobs", unit: str = "model",
             progress: bool = True) -> dict:
    """``{key: fn(*args)}`` for every ``key → args`` of ``jobs`` (in the order of ``jobs``), ``workers`` at a time.

    done(key, result), if given, is called here as each job finishes (in completion order), e.g. to
    store its row. cost(key): a job's expected relative cost; the costliest start first, so that no worker
    is left alone with a long job at the end. An exception in a job is raised here after the running jobs
    are cancelled.
    """
    workers = min(check_positive_int(workers, "workers"), max(1, len(jobs)))
    order = list(jobs) if cost is None else sorted(jobs, key=cost, reverse=True)
    results = {}
    bar = tqdm(total=len(jobs), desc=desc, unit=unit, disable=not progress or not jobs, leave=False)

    def finish(key, result):
        results[key] = result
        if done is not None:
            done(key, result)
        bar.update()

    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        for key in order:
            finish(key, fn(*jobs[key]))
    else:
        _in_workers(fn, jobs, order, workers, finish)
    bar.close()
    return {key: results[key] for key in jobs}


def _in_workers(fn: Callable, jobs: Mapping[str, tuple], order: list, workers: int, finish: Callable) -> None:
    """The jobs in ``order`` on a pool of ``workers`` forked processes; finish(key, result) as each ends."""
    threads = max(1, torch.get_num_threads() // workers)
    with warnings.catch_warnings():  # Python ≥ 3.12 warns about fork in a threaded process (torch's pool)
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=torch.set_num_threads, initargs=(threads,)) as pool:
            futures = {pool.submit(fn, *jobs[key]): key for key in order}
            try:
                for future in as_completed(futures):
                    finish(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
