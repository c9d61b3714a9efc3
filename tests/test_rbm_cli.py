"""Command line ``rbm train|evaluate`` on tiny data (smoke tests) and its error handling."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rbm
from rbm.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_data(tmp_path):
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 2, (3, 9))
    x = protos[rng.integers(0, 3, 60)]
    x = np.where(rng.random(x.shape) < 0.05, 1 - x, x).astype(np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, train=x[:40], test=x[40:])
    return path


def test_train_then_evaluate(tmp_path, tiny_data, capsys):
    out, hist, ckpt = tmp_path / "m.npz", tmp_path / "h.json", tmp_path / "c.npz"
    argv = ["train", "--data", str(tiny_data), "--hidden", "4", "--mask", "local_2d", "--window", "2",
            "--epochs", "3", "--lr", "0.1", "--batch-size", "10", "--valid", "test", "--out", str(out),
            "--history", str(hist), "--checkpoint", str(ckpt), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "epoch 3" in text and "train NLL" in text and "test NLL" in text
    model = rbm.load(out)
    assert model.n_hidden == 4 and not model.is_dense
    record = json.loads(hist.read_text())
    assert len(record["history"]) == 3 and record["n_params"] == model.n_params
    assert ckpt.exists()
    # a second call with the finished checkpoint resumes (no new epochs) and gives the same model
    assert main(argv) == 0
    assert (rbm.load(out).W == model.W).all()

    res = tmp_path / "eval.json"
    assert main(["evaluate", str(out), "--data", str(tiny_data), "--split", "test", "--json", str(res)]) == 0
    text = capsys.readouterr().out
    assert "log Z (exact)" in text and "NLL (test, 20 samples)" in text
    result = json.loads(res.read_text())
    assert result["log_z_method"] == "exact" and result["n_samples"] == 20

    assert main(["evaluate", str(out), "--data", str(tiny_data), "--method", "ais", "--ais-betas", "200",
                 "--ais-chains", "20", "--reverse", "--n-gibbs", "20"]) == 0
    text = capsys.readouterr().out
    assert "log Z (ais)" in text and "reverse AIS" in text and "NLL bracket" in text


def test_train_options_reach_the_trainer(tmp_path, tiny_data):
    hist = tmp_path / "h.json"
    assert main(["train", "--data", str(tiny_data), "--hidden", "3", "--epochs", "30", "--lr", "0.3", "--valid", "test",
                 "--patience", "1", "--no-centering", "--no-adaptive", "--average", "0", "--history", str(hist),
                 "--no-progress"]) == 0
    record = json.loads(hist.read_text())
    hyper = record["hyper_parameters"]
    assert hyper["patience"] == 1 and not hyper["centering"] and not hyper["adaptive"] and hyper["average"] is None
    assert record["history"][-1]["best_epoch"] == len(record["history"]) - 1


@pytest.mark.parametrize("flag, tracked", [([], True), (["--no-track-log-z"], False)])
def test_train_tracks_the_ais_log_z_unless_told_not_to(tmp_path, tiny_data, flag, tracked):
    hist = tmp_path / "h.json"
    assert main(["train", "--data", str(tiny_data), "--hidden", "3", "--epochs", "2", "--log-z", "ais", "--ais-chains",
                 "8", "--ais-betas", "20", "--history", str(hist), "--no-progress"] + flag) == 0
    record = json.loads(hist.read_text())
    assert record["hyper_parameters"]["track_log_z"] is tracked
    assert all((h["log_z_ais"] is not None) is tracked for h in record["history"])


@pytest.mark.parametrize("mask", ["random", "local_2d"])
@pytest.mark.parametrize("window", [[], ["--window", "2"]], ids=["default-window", "window-2"])
def test_train_with_parameter_budget(tmp_path, tiny_data, mask, window):
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(tiny_data), "--params", "109", "--mask", mask, "--epochs", "1",
                 "--eval-every", "0", "--out", str(out), "--no-progress"] + window) == 0
    assert abs(rbm.load(out).n_params - 109) <= 0.01 * 109


@pytest.mark.parametrize("args, match", [
    (["--hidden", "0"], "n_hidden must be >= 1"),
    (["--hidden", "3", "--mask", "random"], "--edges"),
    (["--hidden", "3", "--params", "50"], "either --hidden or --params"),
    (["--hidden", "3", "--mask", "local_2d", "--shape", "2", "4"], "--shape"),
    (["--hidden", "3", "--limit", "0"], "limit must be >= 1"),
])
def test_bad_arguments_exit_2(tiny_data, capsys, args, match):
    assert main(["train", "--data", str(tiny_data), "--epochs", "1", "--no-progress"] + args) == 2
    assert match in capsys.readouterr().err


def test_bad_data_files(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((5, 4), 0.5))
    assert main(["train", "--data", str(bad), "--hidden", "2", "--no-progress"]) == 2
    assert "must be binary" in capsys.readouterr().err
    assert main(["train", "--data", "nosuchset", "--hidden", "2"]) == 2
    assert "unknown data set" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.npz"), "--data", str(bad)]) == 2
    assert "no model file" in capsys.readouterr().err


@pytest.mark.parametrize("data", ["bars-and-stripes:3x2", "bars_and_stripes:3x2"])
def test_named_data_sets(tmp_path, data):
    """--data goes through bornmachine.datasets.by_name: a sized bars-and-stripes grid, either spelling."""
    out = tmp_path / "bas.npz"
    assert main(["train", "--data", data, "--hidden", "3", "--mask", "local_2d", "--window", "2", "--epochs", "1",
                 "--out", str(out), "--no-progress"]) == 0
    assert rbm.load(out).n_visible == 6


def test_python_dash_m_on_mnist5k(tmp_path):
    """End to end through the module entry point on 50 MNIST digits (exact log Z: 10 hidden units)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "mnist.npz"
    proc = subprocess.run([sys.executable, "-m", "rbm", "train", "--data", "mnist5k", "--limit", "50", "--hidden",
                           "10", "--mask", "local_2d", "--window", "5", "--epochs", "1", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "train NLL" in proc.stdout and "(exact)" in proc.stdout
    assert rbm.load(out).n_visible == 784


def test_train_with_a_from_data_mask(tmp_path, tiny_data, capsys):
    from rbm import masks

    train = np.load(tiny_data)["train"]
    for extra, n_hidden in ((["--hidden", "4"], 4), (["--params", "61"], 13)):  # 61 = 9 + 13 * (3 + 1)
        out = tmp_path / f"{n_hidden}.npz"
        argv = ["train", "--data", str(tiny_data), "--mask", "from-data", "--fan-in", "3", "--epochs", "1",
                "--shape", "3", "3", "--out", str(out), "--no-progress"] + extra
        assert main(argv) == 0, capsys.readouterr().err
        model = rbm.load(out)
        assert model.n_hidden == n_hidden and model.mask.equal(masks.from_data(train, n_hidden, 3))
    assert main(["train", "--data", str(tiny_data), "--mask", "from_data", "--hidden", "2", "--fan-in", "10",
                 "--epochs", "1", "--no-progress"]) == 2
    assert "fan_in = 10 exceeds" in capsys.readouterr().err
