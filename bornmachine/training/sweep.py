"""SweepTrainer: two-site sweeps (Han et al., PRX 8, 031012, 2018) on any Born machine, by the engine its
model names (:mod:`~bornmachine.training.chain_sweep` for an MPS, :mod:`~bornmachine.training.tree_sweep`
for a TTN)."""
from __future__ import annotations

import math

import torch

from .. import tree_kernels
from ..tree import Tree
from ..validation import check_float_dtype, check_positive_int
from .born import BornTrainer
from .chain_sweep import ChainSweep
from .engine import SweepEngine
from .local_update import LocalUpdate
from .tree_restructure import CRITERIA, RestructuringTreeSweep
from .tree_sweep import TreeSweep

#: The engines by the name a model class gives in its ``sweep_engine`` attribute.
ENGINES: dict[str, type[SweepEngine]] = {"chain": ChainSweep, "tree": TreeSweep}


def engine_for(model) -> type[SweepEngine]:
    """The engine class a model names by its ``sweep_engine``; ``TypeError`` for anything else."""
    name = getattr(type(model), "sweep_engine", None)
    if name not in ENGINES:
        raise TypeError(f"SweepTrainer trains a Born machine that names its sweep engine (MPS, TTN), "
                        f"got {type(model).__name__}")
    return ENGINES[name]


class SweepTrainer(BornTrainer):
    """Two-site DMRG-style training of an MPS or a TTN.

    At each bond (tree: each edge between internal nodes, the two root edges as one bond) the two
    tensors are merged into B; ``n_steps`` gradient steps B ← (B − lr ∇_B L)/‖·‖ on the NLL are taken
    with cached per-sample environments (minibatches of ``batch_size`` or the full set); B is split at
    the truncated-SVD rank and the orthogonality centre moves on. One sweep = MPS: left→right then
    right→left; TTN: a depth-first tour crossing every inner edge twice (an edge into a node whose children are
    both leaves once, with 2·``n_steps`` steps; the first sweep of a fresh run optimises only on the way up).
    See the engines' modules for their environments and memory.

    Parameters
    ----------
    model : MPS or TTN (changed in place).
    max_bond : int, bond-dimension cap. cutoff : float in [0, 1), relative singular-value cutoff.
    lr : float, step size (default 0.1: on mnist5k, trained to validation convergence, MPS and TTN at D = 4 and 8
        end 0.6–2.1 nats lower than at 0.05, ``benchmarks/bench_born_lr.py``; a step shrinks what no sample
        touches by 1 − 2·lr, and at 0.4 a D = 4 tree gave a test image zero probability).
    n_steps : gradient steps per bond. batch_size : int or None (full batch).
    n_sweeps : int, sweeps in all (a finished checkpoint can be resumed with a larger n_sweeps).
    seed : int (minibatch order, randomized SVDs).
    max_step : float or None, trust region (‖B‖ = 1): a step lr·∇ longer than this is replaced by the step of
        length ≤ max_step that minimises the local NLL along −∇ (exact line search), so a sample of tiny
        amplitude (∇ ∝ 1/ψ) cannot wipe out the merged tensor in one step; None = plain steps.
    env_dtype : torch dtype or None, storage of the cached per-sample environments (None: the model's
        dtype). ``torch.float32`` halves their memory for a float64 model; every contraction, the
        merged tensor, its gradient and the split stay in the model's dtype (environments are converted
        on use). Like the device, not a checkpointed setting.
    restructure : None, "nll" or "mi" (TTN only), the adaptive tree: at each two-node step try the three
        pairings of the four branches around the merged tensor and keep the one of lowest local NLL after
        the truncated split ("nll") or lowest entropy of the new bond ("mi"); see
        :mod:`~bornmachine.training.tree_restructure`. The model's ``tree`` changes (and is checkpointed);
        records then add ``rewired`` (rewirings in the sweep).
    patience : int or None, early stopping: with validation data, stop after ``patience`` sweeps without a
        lower validation NLL and end with the tensors (and tree) of the best sweep (``best_epoch``).
    """

    checkpoint_name = "a sweep"
    unit = "sweep"

    def __init__(self, model, *, max_bond: int = 32, cutoff: float = 1e-7, lr: float = 0.1,
                 n_steps: int = 1, batch_size: int | None = None, n_sweeps: int = 4, seed: int = 0,
                 max_step: float | None = 0.3, env_dtype: torch.dtype | None = None,
                 restructure: str | None = None, patience: int | None = None):
        super().__init__(model, check_positive_int(n_sweeps, "n_sweeps"), seed, patience)
        engine = engine_for(model)
        self.max_bond = check_positive_int(max_bond, "max_bond")
        if not (isinstance(cutoff, (int, float)) and 0.0 <= cutoff < 1.0):
            raise ValueError(f"cutoff must be in [0, 1), got {cutoff!r}")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.cutoff, self.lr = float(cutoff), float(lr)
        self.n_steps = check_positive_int(n_steps, "n_steps")
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        if max_step is not None and not (isinstance(max_step, (int, float)) and max_step > 0):
            raise ValueError(f"max_step must be a positive number or None, got {max_step!r}")
        self.max_step = None if max_step is None else float(max_step)
        self.env_dtype = check_float_dtype(env_dtype, "env_dtype")
        if restructure is not None and restructure not in CRITERIA:
            raise ValueError(f"restructure must be None or one of {CRITERIA}, got {restructure!r}")
        if restructure is not None and engine is not TreeSweep:
            raise ValueError(f"restructure={restructure!r} rewires a tree: it needs a TTN, not a "
                             f"{type(model).__name__} (an MPS's chain has no pairings to choose)")
        self.restructure = restructure
        self.update = LocalUpdate(self.lr, self.n_steps, self.batch_size, self.max_step, self.generator)
        if restructure is None:
            self.engine = engine(model, self.update, self.max_bond, self.cutoff, env_dtype)
        else:
            self.engine = RestructuringTreeSweep(model, self.update, self.max_bond, self.cutoff, env_dtype, restructure)

    @property
    def n_sweeps(self) -> int:
        return self.n_epochs

    def hyper_parameters(self) -> dict:
        return {"max_bond": self.max_bond, "cutoff": self.cutoff, "lr": self.lr, "n_steps": self.n_steps,
                "batch_size": self.batch_size, "n_sweeps": self.n_sweeps, "seed": self.seed,
                "max_step": self.max_step, "restructure": self.restructure, "patience": self.patience,
                "env_dtype": None if self.env_dtype is None else str(self.env_dtype).replace("torch.", "")}

    def _trajectory_keys(self) -> tuple[str, ...]:
        return ("max_bond", "cutoff", "lr", "n_steps", "batch_size", "max_step", "seed", "restructure", "n_sites")

    def _label(self) -> str:
        return "sweep"

    def _run_epoch(self, x_train: torch.Tensor, epoch: int) -> dict:
        if self.model.n_sites < 2:
            raise ValueError("two-site training needs at least 2 sites")
        self.engine.first_sweep = epoch == 0
        record = {"zero_prob": self.engine.sweep(x_train, self._part)}
        if self.restructure is not None:
            record["rewired"] = self.engine.n_rewired
        return record

    def _state(self) -> tuple[dict, dict]:
        meta, arrays = super()._state()
        if self.restructure is not None:  # the tree training has rewired
            arrays["tree_children"] = self.model.tree.internal_children()
        return meta, arrays

    def _load_state(self, meta: dict, arrays: dict, where: str) -> None:
        if self.restructure is not None:
            tree = Tree(arrays["tree_children"])
            if tree.n_sites != self.model.n_sites:
                raise ValueError(f"{where} holds a tree over {tree.n_sites} sites, the model has {self.model.n_sites}")
            self.model.tree = tree
        super()._load_state(meta, arrays, where)
        if self.restructure is not None:
            try:
                tree_kernels.check_tensors(self.model.tree, self.model.tensors)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where} holds tensors that do not fit its tree: {err}") from err

    def _release(self) -> None:
        self.engine.release()
