"""Restricted Boltzmann machine: pure energy / free-energy / conditional kernels and the :class:`RBM` model.

Conventions
-----------
* Visible units ``v`` (N, n_visible) and hidden units ``h`` (N, n_hidden) take values in {0, 1}.
* Energy ``E(v, h) = -v·b - h·c - vᵀ W h`` with ``W`` of shape (n_visible, n_hidden).
* Free energy ``F(v) = -v·b - Σ_j softplus(c_j + (vW)_j)`` so that ``p(v) = exp(-F(v)) / Z``.
* All logs are natural (nats).

The module-level functions are pure tensor kernels (no validation, no state, no randomness other
than an explicit ``generator``); :class:`RBM` validates its inputs and calls them. The partition
function lives in :mod:`rbm.partition`, training in :mod:`rbm.training`, files in :mod:`rbm.io`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from bornmachine.estimate import Estimate
from bornmachine.io import write_npz
from bornmachine.validation import as_binary, check_positive_int

__all__ = [
    "RBM", "energy", "free_energy", "hidden_free_energy", "hidden_prob", "visible_prob",
    "bernoulli", "gibbs_step", "softplus", "base_rate_bias", "make_generator",
]

#: Version of the RBM file layout (independent of the container version of bornmachine.io).
RBM_FILE_VERSION = 1


# --------------------------------------------------------------------------------------------------
# pure kernels
# --------------------------------------------------------------------------------------------------
def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + e^x)`` to full precision of ``x.dtype`` (no overflow, no epsilon hacks).

    ``torch.nn.functional.softplus`` returns ``x`` above a threshold; the thresholds used here
    (37 for float64, 20 otherwise) are where ``log1p(e^-x)`` falls below half an ulp of ``x``.
    """
    return F.softplus(x, threshold=37.0 if x.dtype == torch.float64 else 20.0)


def energy(v: torch.Tensor, h: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Joint energy ``E(v, h) = -v·b - h·c - vᵀWh``.

    Parameters
    ----------
    v : (N, n_visible) float tensor of 0/1.
    h : (N, n_hidden) float tensor of 0/1.
    W : (n_visible, n_hidden); b : (n_visible,); c : (n_hidden,).

    Returns
    -------
    (N,) tensor, nats.
    """
    return -(v @ b) - (h @ c) - ((v @ W) * h).sum(-1)


def free_energy(v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Visible free energy ``F(v) = -v·b - Σ_j softplus(c_j + (vW)_j)`` (hidden units summed out).

    Parameters
    ----------
    v : (N, n_visible) float tensor of 0/1 (any real values are accepted by the formula).
    W : (n_visible, n_hidden); b : (n_visible,); c : (n_hidden,).

    Returns
    -------
    (N,) tensor, nats; ``log p(v) = -F(v) - log Z``.
    """
    return -(v @ b) - softplus(torch.addmm(c, v, W)).sum(-1)


def hidden_free_energy(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Hidden free energy ``F(h) = -h·c - Σ_i softplus(b_i + (W h)_i)`` (visible units summed out).

    Parameters
    ----------
    h : (N, n_hidden); W : (n_visible, n_hidden); b : (n_visible,); c : (n_hidden,).

    Returns
    -------
    (N,) tensor, nats; ``log p(h) = -F(h) - log Z``.
    """
    return free_energy(h, W.T, c, b)


def hidden_prob(v: torch.Tensor, W: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``p(h_j = 1 | v) = sigmoid(c_j + (vW)_j)``, shape (N, n_hidden)."""
    return torch.sigmoid(torch.addmm(c, v, W))


def visible_prob(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)``, shape (N, n_visible)."""
    return torch.sigmoid(torch.addmm(b, h, W.T))


def _all_finite(t: torch.Tensor) -> bool:
    """Whether t holds no NaN or inf: one reduction (a finite sum of the entries proves it), the elementwise
    test only when the sum is not finite (NaN, inf, or an overflow of huge entries)."""
    return math.isfinite(float(t.sum())) or bool(torch.isfinite(t).all())


def bernoulli(p: torch.Tensor, generator: torch.Generator | None, rows=None) -> torch.Tensor:
    """Independent Bernoulli(p) draws, returned as 0/1 in ``p.dtype`` (same shape as ``p``).

    ``rows = (selector, total)``: p (N, ...) holds the rows ``selector`` (a slice or a bool mask of
    length ``total``) of a batch of ``total`` rows; the uniforms of the whole batch are drawn and these
    rows used, so every process of a data-parallel run advances ``generator`` alike and its rows get
    the numbers a single process would give them.

    The uniforms are float64 whatever p's dtype: float32 uniforms are multiples of 2⁻²⁴, so every
    0 < p < 2⁻²⁴ would fire with probability 2⁻²⁴ — in an RBM with ~10³ units over ~10⁵ sweeps that is a few
    spurious events per run, enough to move a float32 AIS estimate of log Z by up to 220 nats (measured).
    A float32 p thus draws the numbers a float64 p does.
    """
    if rows is None:
        u = torch.rand(p.shape, generator=generator, dtype=torch.float64, device=p.device)
    else:
        selector, total = rows
        u = torch.rand((total,) + tuple(p.shape[1:]), generator=generator, dtype=torch.float64,
                       device=p.device)[selector]
    return (u < p).to(p.dtype)


def gibbs_step(v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
               generator: torch.Generator | None, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One block-Gibbs sweep ``v → h ~ p(h|v) → v' ~ p(v|h)`` (``rows``: see :func:`bernoulli`).

    Returns
    -------
    (v', h) : (N, n_visible) and (N, n_hidden) 0/1 tensors in ``v.dtype``.
    """
    h = bernoulli(hidden_prob(v, W, c), generator, rows)
    return bernoulli(visible_prob(h, W, b), generator, rows), h


def base_rate_bias(data: torch.Tensor, pseudocount: float = 1.0) -> torch.Tensor:
    """Visible biases of the independent ("base-rate") model fitted to ``data``.

    ``b_i = logit(p_i)`` with ``p_i = (Σ_n v_ni + α) / (N + 2α)`` (``α = pseudocount`` keeps the
    biases finite for pixels that are always 0 or always 1).

    Parameters
    ----------
    data : (N, n_visible) float tensor of 0/1.
    pseudocount : float ≥ 0 (must be > 0 when a pixel is constant in ``data``).

    Returns
    -------
    (n_visible,) tensor in ``data.dtype``.
    """
    n = data.shape[0]
    p = (data.sum(0) + pseudocount) / (n + 2.0 * pseudocount)
    return torch.log(p) - torch.log1p(-p)


def make_generator(generator: torch.Generator | None = None, seed: int | None = None,
                   device=None) -> torch.Generator:
    """Return ``generator``, else a new one seeded with ``seed`` (or a fresh OS seed); never global state."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if seed is not None:
            raise ValueError("pass either generator= or seed=, not both")
        return generator
    g = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    if seed is None:
        g.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
        g.manual_seed(int(seed))
    return g


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------
class RBM:
    """Binary-binary restricted Boltzmann machine with an optional connection mask.

    ``p(v) = exp(-F(v)) / Z`` with ``F`` the free energy (see :func:`free_energy`).

    Parameters
    ----------
    n_visible : int ≥ 1
    n_hidden : int ≥ 1
    mask : bool array (n_visible, n_hidden), optional
        Allowed visible–hidden connections (numpy or torch; 0/1 values accepted). Masked weights are
        zero on construction and after every assignment to :attr:`W`. ``None``: fully connected.
        See :mod:`rbm.masks`.
    init_std : float
        Standard deviation of the initial Gaussian weights (biases start at zero).
    dtype, device : torch dtype (float64 default) and device.
    generator : torch.Generator, optional
        Source of the initial weights (a fresh OS-seeded generator when omitted).

    Attributes
    ----------
    W : (n_visible, n_hidden) tensor; assigning re-applies the mask and rejects NaN/inf.
    b : (n_visible,) visible bias.
    c : (n_hidden,) hidden bias.
    mask : (n_visible, n_hidden) bool tensor (all True when dense).
    n_params : number of free parameters: unmasked weights + n_visible + n_hidden.
    """

    kind = "RBM"

    def __init__(self, n_visible: int, n_hidden: int, *, mask=None, init_std: float = 0.01,
                 dtype: torch.dtype = torch.float64, device=None, generator: torch.Generator | None = None):
        n_visible = check_positive_int(n_visible, "n_visible")
        n_hidden = check_positive_int(n_hidden, "n_hidden")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a real floating torch dtype, got {dtype!r}")
        init_std = float(init_std)
        if not (init_std >= 0 and math.isfinite(init_std)):
            raise ValueError(f"init_std must be a finite number >= 0, got {init_std}")
        device = torch.device(device) if device is not None else torch.device("cpu")
        self._dtype = dtype
        self._device = device
        self._set_mask(_as_mask(mask, n_visible, n_hidden, device))
        gen = make_generator(generator, device=device if generator is None else None)
        w = torch.randn(n_visible, n_hidden, generator=gen, dtype=torch.float64, device=gen.device) * init_std
        self._W = torch.zeros(n_visible, n_hidden, dtype=dtype, device=device)
        self.W = w.to(dtype=dtype, device=device)
        self._b = torch.zeros(n_visible, dtype=dtype, device=device)
        self._c = torch.zeros(n_hidden, dtype=dtype, device=device)

    # ---------------------------------------------------------------------------------------------
    # parameters
    # ---------------------------------------------------------------------------------------------
    @property
    def W(self) -> torch.Tensor:
        """Weights (n_visible, n_hidden); masked entries are exactly zero."""
        return self._W

    @W.setter
    def W(self, value) -> None:
        self._W = self._check_param(value, (self.n_visible, self.n_hidden), "W")
        if self._mask is not None:
            self._W.masked_fill_(self._masked_out, 0.0)

    def _set_mask(self, mask: torch.Tensor | None) -> None:
        """The connection mask (n_visible, n_hidden) bool or None (dense), with its complement and edge count."""
        self._mask = mask
        self._masked_out = None if mask is None else ~mask
        self._n_edges = None if mask is None else int(mask.sum())

    @property
    def masked_out(self) -> torch.Tensor | None:
        """The complement of the mask (n_visible, n_hidden) bool: the weights held at zero (None if dense)."""
        return self._masked_out

    @property
    def b(self) -> torch.Tensor:
        """Visible bias (n_visible,)."""
        return self._b

    @b.setter
    def b(self, value) -> None:
        self._b = self._check_param(value, (self.n_visible,), "b")

    @property
    def c(self) -> torch.Tensor:
        """Hidden bias (n_hidden,)."""
        return self._c

    @c.setter
    def c(self, value) -> None:
        self._c = self._check_param(value, (self.n_hidden,), "c")

    def _check_param(self, value, shape, name) -> torch.Tensor:
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(value).__name__}")
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(value.shape)}; expected {shape}")
        if not (value.is_floating_point() or value.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16,
                                                               torch.int32, torch.int64)):
            raise TypeError(f"{name} must be real, got dtype {value.dtype}")
        value = value.detach().to(dtype=self._dtype, device=self._device, copy=True)  # never alias the caller's
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or inf")
        return value

    @property
    def mask(self) -> torch.Tensor:
        """Connection mask (n_visible, n_hidden), bool; all True for a dense RBM."""
        if self._mask is None:
            return torch.ones(self.n_visible, self.n_hidden, dtype=torch.bool, device=self._device)
        return self._mask.clone()

    @property
    def is_dense(self) -> bool:
        """True when every visible unit connects to every hidden unit."""
        return self._mask is None

    @property
    def n_visible(self) -> int:
        return self._W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self._W.shape[1]

    @property
    def n_edges(self) -> int:
        """Number of unmasked visible–hidden connections."""
        return self.n_visible * self.n_hidden if self._mask is None else self._n_edges

    @property
    def n_params(self) -> int:
        """Free parameters: unmasked weights + visible biases + hidden biases."""
        return self.n_edges + self.n_visible + self.n_hidden

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def parameters(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W, b, c)``."""
        return self._W, self._b, self._c

    def set_parameters(self, W, b, c) -> None:
        """Assign all three parameters at once (validated; mask re-applied)."""
        self.W, self.b, self.c = W, b, c

    def add_(self, dW: torch.Tensor, db: torch.Tensor, dc: torch.Tensor) -> None:
        """In-place update ``W += dW, b += db, c += dc`` (the training step); the mask is re-applied.

        Raises ``ValueError`` (and leaves the model unchanged) if the result holds NaN or inf.
        """
        for name, d, p in (("dW", dW, self._W), ("db", db, self._b), ("dc", dc, self._c)):
            if not isinstance(d, torch.Tensor) or d.shape != p.shape:
                raise ValueError(f"{name} must be a tensor of shape {tuple(p.shape)}")
        W, b, c = self._W + dW, self._b + db, self._c + dc
        for name, t in (("W", W), ("b", b), ("c", c)):
            if not _all_finite(t):
                raise ValueError(f"{name} would contain NaN or inf after the update")
        if self._mask is not None:
            W.masked_fill_(self._masked_out, 0.0)
        self._W, self._b, self._c = W, b, c

    def add_edges_(self, edges: torch.Tensor, dw: torch.Tensor, db: torch.Tensor, dc: torch.Tensor) -> None:
        """In-place update of the weights on ``edges`` (E,) (flat indices row · n_hidden + col of unmasked
        entries) by ``dw`` (E,), and ``b += db, c += dc``: the training step of sparse masks, which never
        touches the masked zeros. Raises ``ValueError`` (and leaves the model unchanged) on NaN or inf."""
        for name, d, p in (("db", db, self._b), ("dc", dc, self._c)):
            if not isinstance(d, torch.Tensor) or d.shape != p.shape:
                raise ValueError(f"{name} must be a tensor of shape {tuple(p.shape)}")
        if not isinstance(dw, torch.Tensor) or dw.shape != edges.shape:
            raise ValueError(f"dw must be a tensor of shape {tuple(edges.shape)} (one value per edge)")
        flat = self._W.view(-1)
        w, b, c = flat[edges] + dw, self._b + db, self._c + dc
        for name, t in (("W", w), ("b", b), ("c", c)):
            if not _all_finite(t):
                raise ValueError(f"{name} would contain NaN or inf after the update")
        flat.index_copy_(0, edges, w)
        self._b, self._c = b, c

    def copy(self) -> "RBM":
        """An independent copy (same parameters, mask, dtype, device)."""
        new = RBM.__new__(RBM)
        new._dtype, new._device = self._dtype, self._device
        new._set_mask(None if self._mask is None else self._mask.clone())
        new._W, new._b, new._c = self._W.clone(), self._b.clone(), self._c.clone()
        return new

    def __repr__(self) -> str:
        kind = "dense" if self._mask is None else f"masked, {self.n_edges} edges"
        return (f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, {kind}, n_params={self.n_params}, "
                f"dtype={self._dtype}, device={self._device})")

    # ---------------------------------------------------------------------------------------------
    # probabilities
    # ---------------------------------------------------------------------------------------------
    def _visible(self, v, name: str = "v") -> torch.Tensor:
        return as_binary(v, self.n_visible, name=name).to(dtype=self._dtype, device=self._device)

    def _hidden(self, h, name: str = "h") -> torch.Tensor:
        return as_binary(h, self.n_hidden, name=name).to(dtype=self._dtype, device=self._device)

    def energy(self, v, h) -> torch.Tensor:
        """Joint energy ``E(v, h)`` (N,), nats; ``v`` (N, n_visible), ``h`` (N, n_hidden) binary."""
        v, h = self._visible(v), self._hidden(h)
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"v has {v.shape[0]} rows but h has {h.shape[0]}")
        return energy(v, h, *self.parameters())

    def free_energy(self, v) -> torch.Tensor:
        """Free energy ``F(v)`` (N,), nats, for binary ``v`` of shape (N, n_visible) or (n_visible,)."""
        return free_energy(self._visible(v), *self.parameters())

    def log_prob(self, v, log_z) -> torch.Tensor:
        """``log p(v) = -F(v) - log Z`` (N,), nats.

        Parameters
        ----------
        v : (N, n_visible) binary.
        log_z : float or :class:`~bornmachine.estimate.Estimate`
            From :func:`rbm.partition.exact_log_z` or :func:`rbm.partition.ais_log_z`.
        """
        return -self.free_energy(v) - _log_z_value(log_z)

    def nll(self, v, log_z) -> Estimate:
        """Mean negative log-likelihood of ``v`` (nats per sample).

        The standard error is that of ``log_z`` (the data set is taken as fixed): every sample's
        NLL shares the same ``log Z``, so an AIS error moves the mean NLL one-for-one.
        """
        value = float(self.free_energy(v).mean()) + _log_z_value(log_z)
        return Estimate(value, float(log_z.stderr) if isinstance(log_z, Estimate) else 0.0)

    def hidden_prob(self, v) -> torch.Tensor:
        """``p(h_j = 1 | v)`` (N, n_hidden)."""
        return hidden_prob(self._visible(v), self._W, self._c)

    def visible_prob(self, h) -> torch.Tensor:
        """``p(v_i = 1 | h)`` (N, n_visible)."""
        return visible_prob(self._hidden(h), self._W, self._b)

    # ---------------------------------------------------------------------------------------------
    # sampling
    # ---------------------------------------------------------------------------------------------
    def gibbs(self, v, k: int = 1, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run ``k`` block-Gibbs sweeps (v → h → v) from every row of ``v``.

        Parameters
        ----------
        v : (N, n_visible) binary start states.
        k : int ≥ 1, number of sweeps.
        generator : torch.Generator (on the model's device).

        Returns
        -------
        (N, n_visible) uint8 tensor of 0/1.
        """
        k = check_positive_int(k, "k")
        x = self._visible(v)
        gen = make_generator(generator, device=self._device)
        for _ in range(k):
            x, _ = gibbs_step(x, *self.parameters(), gen)
        return x.to(torch.uint8)

    def sample(self, n: int, n_steps: int = 1000, *, generator: torch.Generator | None = None,
               init=None) -> torch.Tensor:
        """Approximate samples from ``p(v)``: ``n`` independent Gibbs chains run for ``n_steps`` sweeps.

        Chains start from ``init`` (N = n binary rows) or, by default, from the independent model
        with the RBM's own visible biases. The result is exact only as ``n_steps → ∞``.

        Returns
        -------
        (n, n_visible) uint8 tensor of 0/1.
        """
        n = check_positive_int(n, "n")
        n_steps = check_positive_int(n_steps, "n_steps")
        gen = make_generator(generator, device=self._device)
        if init is None:
            x = bernoulli(torch.sigmoid(self._b).expand(n, -1), gen)
        else:
            x = self._visible(init, "init")
            if x.shape[0] != n:
                raise ValueError(f"init has {x.shape[0]} rows; expected n = {n}")
        for _ in range(n_steps):
            x, _ = gibbs_step(x, *self.parameters(), gen)
        return x.to(torch.uint8)

    # ---------------------------------------------------------------------------------------------
    # files
    # ---------------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model atomically to ``path`` (versioned npz, parameters in float64; see :mod:`rbm.io`)."""
        meta = {"rbm_version": RBM_FILE_VERSION, "n_visible": self.n_visible, "n_hidden": self.n_hidden,
                "dtype": str(self.dtype).replace("torch.", "")}
        W, b, c = (t.detach().to("cpu", torch.float64).numpy() for t in self.parameters())
        write_npz(path, self.kind, meta, {"W": W, "b": b, "c": c, "mask": self.mask.cpu().numpy()})


def _as_mask(mask, n_visible: int, n_hidden: int, device) -> torch.Tensor | None:
    """Validate a connection mask; return a bool tensor on ``device`` or None when fully connected."""
    if mask is None:
        return None
    if isinstance(mask, np.ndarray):
        if mask.dtype == object:
            raise TypeError("mask must be a boolean array, got dtype object")
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a boolean numpy array or torch tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != (n_visible, n_hidden):
        raise ValueError(f"mask has shape {tuple(mask.shape)}; expected (n_visible, n_hidden) = "
                         f"({n_visible}, {n_hidden})")
    if mask.dtype != torch.bool:
        if mask.is_complex() or ((mask != 0) & (mask != 1)).any():
            raise ValueError("mask must be boolean (or hold only 0/1 values)")
        mask = mask != 0
    mask = mask.to(device=device).clone()
    return None if bool(mask.all()) else mask


def _log_z_value(log_z) -> float:
    if isinstance(log_z, Estimate):
        value = float(log_z.value)
    elif isinstance(log_z, (int, float, np.floating, np.integer)) and not isinstance(log_z, bool):
        value = float(log_z)
    elif isinstance(log_z, torch.Tensor) and log_z.numel() == 1:
        value = float(log_z)
    else:
        raise TypeError(f"log_z must be a float or an Estimate, got {type(log_z).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"log_z must be finite, got {value}")
    return value
