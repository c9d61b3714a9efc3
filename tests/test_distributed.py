"""Data-parallel training: a 2-process gloo run on localhost equals the 1-process run.

Two ranks of ``tests/distributed_worker.py`` train every scenario there (MPS sweeps full-batch and
minibatch, TTN sweeps with the explicit and the implicit step, GradientTrainer, PCD and CD, and a
sweep resumed from a checkpoint) on the same data and seeds; this process runs them without a
process group. Parameters and history NLLs must agree to float64 round-off, and both ranks must hold
bit-identical parameters. Helpers of :mod:`bornmachine.distributed` are checked without a group.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import distributed_worker
from bornmachine import MPS, datasets, distributed
from bornmachine import SweepTrainer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(directory, world_size: int = 2, timeout: float = 120.0) -> list[dict]:
    """Run the worker on ``world_size`` local processes (gloo); return each rank's results."""
    port = _free_port()
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                   LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "distributed_worker.py"), str(directory)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{log}"
    out = []
    for rank in range(world_size):
        with np.load(os.path.join(directory, f"rank{rank}.npz")) as f:
            out.append({k: f[k] for k in f.files})
    return out


@pytest.fixture(scope="module")
def ddp_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def two_ranks(ddp_dir):
    return _launch(ddp_dir)


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    assert not distributed.is_active()
    return distributed_worker.run_all(tmp_path_factory.mktemp("single"))


@pytest.mark.parametrize("scenario", list(distributed_worker.SCENARIOS) + ["resumed"])
def test_two_processes_equal_one(scenario, two_ranks, one_rank):
    rank0, rank1 = two_ranks
    keys = [k for k in one_rank if k.startswith(scenario + "/")]
    assert keys and all(k in rank0 and k in rank1 for k in keys)
    for key in keys:
        assert np.array_equal(rank0[key], rank1[key], equal_nan=True), f"{key} differs between the ranks"
        assert rank0[key].shape == one_rank[key].shape, key
        atol = 1e-10 if key.endswith("nll") else 1e-10 * max(1.0, np.abs(one_rank[key]).max())
        np.testing.assert_allclose(rank0[key], one_rank[key], rtol=1e-10, atol=atol, err_msg=key)


def test_resumed_checkpoint_holds_both_sweeps(two_ranks, ddp_dir):
    from bornmachine.io import read_npz

    meta, _ = read_npz(ddp_dir / "sweep.npz")
    assert meta["kind"] == "checkpoint" and len(meta["history"]) == 2
    assert sorted(p.name for p in ddp_dir.iterdir()) == ["rank0.npz", "rank1.npz", "sweep.npz"]


def _torchrun(args, cwd, timeout: float = 120.0) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(_free_port()),
           *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout
    return done.stdout


def test_cli_train_under_torchrun(tmp_path):
    """``torchrun -m bornmachine train`` joins the group itself; rank 0 alone prints and writes."""
    import json

    from bornmachine.cli import main

    args = ["train", "--data", "bars-and-stripes", "--valid-fraction", "0.3", "--sweeps", "2", "--max-bond", "4", "--quiet",
            "--n-samples", "4"]
    log = _torchrun(["-m", "bornmachine", *args, "--out", "ddp"], tmp_path)
    assert log.count("sweep   2") == 1 and "2 processes" in log
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    runs = [json.loads((tmp_path / d / "history.json").read_text()) for d in ("ddp", "one")]
    for key in ("train_nll", "valid_nll"):
        np.testing.assert_allclose([r[key] for r in runs[0]], [r[key] for r in runs[1]], rtol=1e-10)
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_rbm_cli_train_under_torchrun(tmp_path):
    from rbm import load
    from rbm.cli import main

    args = ["train", "--data", "bars_and_stripes:3x3", "--hidden", "4", "--epochs", "2", "--batch-size", "5",
            "--no-progress"]
    log = _torchrun(["-m", "rbm", *args, "--out", "ddp.npz", "--checkpoint", "ckpt.npz"], tmp_path)
    assert log.count("epoch 2") == 1
    assert main([*args, "--out", str(tmp_path / "one.npz")]) == 0
    for a, b in zip(load(tmp_path / "ddp.npz").parameters(), load(tmp_path / "one.npz").parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


# --- helpers without a process group ----------------------------------------------------------------

def test_helpers_are_single_process_identities():
    assert not distributed.is_active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    part = distributed.shard(10)
    assert (part.start, part.stop, part.total, part.size) == (0, 10, 10, 10)
    idx = torch.tensor([7, 2, 9])
    assert part.local(idx) is idx and part.positions(idx).all()
    t = torch.arange(6.0).reshape(2, 3)
    distributed.all_reduce_sum(t)
    assert torch.equal(t, torch.arange(6.0).reshape(2, 3))
    assert distributed.sum_ints(3, 4) == (3, 4)
    assert distributed.broadcast_flag(True) is True
    assert distributed.all_gather_rows(t) is t
    with distributed.launched():
        assert not distributed.is_active()


def test_shard_blocks_cover_the_rows():
    blocks = [distributed.Shard(10 * r // 3, 10 * (r + 1) // 3, 10) for r in range(3)]
    assert [(b.start, b.stop) for b in blocks] == [(0, 3), (3, 6), (6, 10)]
    idx = torch.tensor([9, 0, 4, 5, 3, 2])
    assert torch.equal(blocks[1].local(idx), torch.tensor([1, 2, 0]))
    assert torch.equal(blocks[1].positions(idx), torch.tensor([False, False, True, True, True, False]))
    assert sorted(torch.cat([b.local(idx) + b.start for b in blocks]).tolist()) == sorted(idx.tolist())


# --- float32 environments -----------------------------------------------------------------------------

def test_float32_environments_train_like_float64():
    """Same NLL to ~1e-5 on a well-conditioned task. (Sweep training is chaotic: on MNIST, float32
    environments move the NLL after a sweep about as much as a 1e-7 relative change of the start.)"""
    train = datasets.bars_and_stripes(3, 4)
    nll = {}
    for env in (None, torch.float32):
        model = MPS(12, 2, generator=torch.Generator().manual_seed(0))
        before = model.nll(train)
        history = SweepTrainer(model, max_bond=6, lr=0.1, n_sweeps=3, env_dtype=env).fit(train, progress=False)
        assert all(t.dtype == torch.float64 for t in model.tensors)
        nll[env] = history[-1]["train_nll"]
    assert nll[torch.float32] < before - 1.0  # it trains
    assert nll[torch.float32] == pytest.approx(nll[None], abs=1e-4)


def test_float32_environments_on_a_tree():
    from bornmachine import TTN

    train = datasets.bars_and_stripes(4, 4)
    nll = {}
    for env in (None, torch.float32):
        model = TTN((4, 4), 2, generator=torch.Generator().manual_seed(1))
        nll[env] = SweepTrainer(model, max_bond=4, lr=0.1, n_sweeps=2, env_dtype=env).fit(train, progress=False)
    assert nll[torch.float32][-1]["train_nll"] == pytest.approx(nll[None][-1]["train_nll"], abs=1e-4)


@pytest.mark.parametrize("bad, error", [("float32", TypeError), (torch.int64, ValueError), (torch.float16, ValueError)])
def test_bad_env_dtype(bad, error):
    with pytest.raises(error, match="env_dtype"):
        SweepTrainer(MPS(4, 2), env_dtype=bad)


# --- CUDA: every model and trainer (skipped without a GPU) ----------------------------------------------

@pytest.mark.gpu
def test_sweep_on_cuda_matches_cpu():
    train = datasets.bars_and_stripes(3, 4)
    runs = {}
    for device in ("cpu", "cuda"):
        model = MPS(12, 2, device=device, generator=torch.Generator().manual_seed(0))
        history = SweepTrainer(model, max_bond=6, lr=0.05, n_sweeps=2, batch_size=8,
                               env_dtype=torch.float32).fit(train, progress=False)
        runs[device] = (model, history)
    assert all(t.device.type == "cuda" for t in runs["cuda"][0].tensors)
    assert runs["cuda"][1][-1]["train_nll"] == pytest.approx(runs["cpu"][1][-1]["train_nll"], rel=1e-6)


@pytest.mark.gpu
def test_ttn_trainers_on_cuda():
    from bornmachine import TTN
    from bornmachine import GradientTrainer

    train = datasets.bars_and_stripes(4, 4)
    model = TTN((4, 4), 2, device="cuda", generator=torch.Generator().manual_seed(1))
    before = model.nll(train)
    SweepTrainer(model, max_bond=4, lr=0.1, n_sweeps=2, env_dtype=torch.float32).fit(train, progress=False)
    assert all(t.device.type == "cuda" for t in model.tensors) and model.nll(train) < before - 1.0
    samples, logp = model.sample(64, generator=torch.Generator().manual_seed(2))
    assert samples.device.type == "cuda" and torch.allclose(model.log_prob(samples), logp.to(model.dtype))
    trainer = GradientTrainer(model, lr=0.01, batch_size=10, n_epochs=2)
    history = trainer.fit(train, progress=False)
    assert all(t.device.type == "cuda" for t in trainer.model.tensors) and np.isfinite(history[-1]["train_nll"])


@pytest.mark.gpu
def test_cd_trainer_on_cuda():
    from rbm import RBM, CDTrainer
    from rbm.partition import exact_log_z

    rng = np.random.default_rng(0)
    train = datasets.random_patterns(3, 16, seed=0)[rng.integers(0, 3, 300)]  # 3 prototypes, 5% noise
    train = np.where(rng.random(train.shape) < 0.05, 1 - train, train)
    model = RBM(16, 4, device="cuda", generator=torch.Generator().manual_seed(5))
    history = CDTrainer(model, lr=0.05, batch_size=20, n_epochs=20, seed=6).fit(train, progress=False)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert history[-1]["train_nll"] < history[0]["train_nll"] - 1.0
    assert history[-1]["train_nll"] == pytest.approx(model.nll(train, exact_log_z(model)).value, rel=1e-9)
