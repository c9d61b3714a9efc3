"""One contract for SweepTrainer, GradientTrainer and CDTrainer: hyper-parameters in the constructor,
``fit(train, valid=None, *, checkpoint=None, callback=None, progress=True)``, one set of history keys,
a public ``hyper_parameters()``, callbacks that can stop training."""
from __future__ import annotations

import inspect
import json

import pytest
import torch

from bornmachine import MPS, TTN, GradientTrainer, SweepTrainer, datasets
from rbm import RBM, CDTrainer

COMMON_KEYS = {"epoch", "train_nll", "valid_nll", "time_s", "best_epoch"}


def gen(seed):
    return torch.Generator().manual_seed(seed)


TRAINERS = {
    "sweep-mps": lambda n: SweepTrainer(MPS((3, 3), 2, generator=gen(0)), max_bond=4, n_sweeps=n),
    "sweep-ttn": lambda n: SweepTrainer(TTN((3, 3), 2, generator=gen(0)), max_bond=4, n_sweeps=n),
    "gradient": lambda n: GradientTrainer(MPS((3, 3), 2, generator=gen(0)), batch_size=5, n_epochs=n),
    "cd": lambda n: CDTrainer(RBM(9, 4, generator=gen(0)), batch_size=5, n_epochs=n),
}


@pytest.fixture
def bas():
    return datasets.bars_and_stripes(3, 3)


@pytest.mark.parametrize("trainer_class", [SweepTrainer, GradientTrainer, CDTrainer])
def test_fit_signature(trainer_class):
    params = inspect.signature(trainer_class.fit).parameters
    assert list(params) == ["self", "train", "valid", "checkpoint", "callback", "progress"]
    assert params["valid"].default is None and params["progress"].default is True
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("checkpoint", "callback", "progress"))
    assert "progress" not in inspect.signature(trainer_class).parameters  # a fit argument, not a setting


@pytest.mark.parametrize("trainer_class", [SweepTrainer, GradientTrainer, CDTrainer])
def test_hyper_parameters_are_the_constructor_settings(trainer_class):
    make = {SweepTrainer: TRAINERS["sweep-mps"], GradientTrainer: TRAINERS["gradient"], CDTrainer: TRAINERS["cd"]}
    trainer = make[trainer_class](2)
    hyper = trainer.hyper_parameters()
    settings = set(inspect.signature(trainer_class).parameters) - {"model", "rbm", "generator"}
    assert set(hyper) == settings
    assert json.loads(json.dumps(hyper)) == hyper


@pytest.mark.parametrize("name", list(TRAINERS))
def test_history_keys_and_early_stop(name, bas):
    trainer = TRAINERS[name](3)
    seen = []
    history = trainer.fit(bas, valid=bas, callback=lambda record: seen.append(record["epoch"]) or record["epoch"] == 2,
                          progress=False)
    assert [r["epoch"] for r in history] == [1, 2] == seen  # a true return stops training
    for record in history:
        assert COMMON_KEYS <= set(record)
        assert record["time_s"] >= 0 and record["valid_nll"] is not None
    assert trainer.epoch == 2 and trainer.history is history
    more = trainer.fit(bas, valid=bas, progress=False)  # fit goes on to n_epochs in all
    assert [r["epoch"] for r in more] == [1, 2, 3]


def test_the_same_keys_for_every_trainer(bas):
    common = None
    for name in TRAINERS:
        keys = set(TRAINERS[name](1).fit(bas, progress=False)[0])
        common = keys if common is None else common & keys
    assert common == COMMON_KEYS


def test_sweep_trainer_refuses_what_names_no_engine():
    with pytest.raises(TypeError, match="SweepTrainer trains"):
        SweepTrainer(RBM(4, 2), n_sweeps=1)
    with pytest.raises(TypeError, match="GradientTrainer trains an MPS or a TTN"):
        GradientTrainer("model")
