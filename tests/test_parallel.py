"""Models trained side by side in worker processes give the rows of one-by-one training."""
import math
import os

import numpy as np
import pytest

from comparison import structure
from comparison.parallel import default_workers, run_jobs


def _square(x):
    return x * x


def _fails(x):
    if x == 3:
        raise ValueError("job 3 failed")
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_run_jobs_returns_every_result_in_job_order(workers):
    finished = []
    out = run_jobs(_square, {f"k{i}": (i,) for i in range(6)}, workers=workers,
                   done=lambda key, value: finished.append((key, value)), progress=False)
    assert list(out) == [f"k{i}" for i in range(6)] and list(out.values()) == [i * i for i in range(6)]
    assert sorted(finished) == sorted(out.items())  # done() ran here, once per job
    with pytest.raises(ValueError, match="job 3 failed"):
        run_jobs(_fails, {i: (i,) for i in range(5)}, workers=workers, progress=False)


def test_run_jobs_starts_the_costliest_first():
    started = []
    out = run_jobs(_square, {i: (i,) for i in range(5)}, workers=1, cost=lambda key: key % 3,
                   done=lambda key, value: started.append(key), progress=False)
    assert started == [2, 1, 4, 0, 3] and list(out) == [0, 1, 2, 3, 4]


def test_run_jobs_refuses_bad_worker_counts():
    with pytest.raises(ValueError, match="workers"):
        run_jobs(_square, {"a": (1,)}, workers=0)
    assert default_workers() >= 1 and run_jobs(_square, {}, workers=2, progress=False) == {}


def test_structure_rows_do_not_depend_on_the_worker_count(tmp_path):
    rng = np.random.default_rng(1)
    x = ((rng.random((160, 6, 1)) < 0.4) & (rng.random((160, 1, 6)) < 0.4)).reshape(160, 36).astype(np.uint8)
    kw = dict(mps_bond=3, ttn_bond=3, max_sweeps=2, patience=1, rbm_max_epochs=2, rbm_patience=1, eval_ais=(8, 20),
              ais_chains=8, ais_betas=50, n_gibbs=5, progress=False,
              structures=["mps:row-major", "mps:from-data", "ttn:random+mi", "rbm:local_2d"])
    rows = {w: structure.structure_experiment(x[:120], x[120:], (6, 6), workers=w, out=os.path.join(tmp_path, str(w)),
                                              **kw).tables["structure"].rows for w in (1, 2)}
    assert [(r["variant"], r["structure"]) for r in rows[1]] == [(r["variant"], r["structure"]) for r in rows[2]]
    for one, two in zip(rows[1], rows[2]):
        assert one["n_params"] == two["n_params"] and one["epochs"] == two["epochs"]
        assert math.isclose(one["test_nll"], two["test_nll"], rel_tol=1e-6), (one, two)


def test_information_table_does_not_depend_on_the_worker_count():
    import torch

    from bornmachine import MPS
    from comparison import experiments

    rng = np.random.default_rng(2)
    x = ((rng.random((150, 6, 1)) < 0.4) & (rng.random((150, 1, 6)) < 0.4)).reshape(150, 36).astype(np.uint8)
    models = {"mps": MPS((6, 6), 3, generator=torch.Generator().manual_seed(0))}
    bips = experiments.profile_bipartitions((6, 6), step=2)
    tables = [experiments.information_table(x, bips, models, model_samples=50, workers=w, progress=False)
              for w in (1, 2)]
    assert len(tables[0]) == len(bips)
    for one, two in zip(tables[0].rows, tables[1].rows):
        assert one.keys() == two.keys() and one["bipartition"] == two["bipartition"]
        for key, value in one.items():
            if isinstance(value, float) and not key.endswith("seconds"):
                assert math.isclose(value, two[key], rel_tol=1e-9, abs_tol=1e-12), key
