"""PNG figures for trained Born machines (matplotlib, non-interactive backend)."""
from __future__ import annotations

import math
import os

import numpy as np


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_grid(samples: np.ndarray, shape, path: str, title: str = "", n_cols: int = 8) -> None:
    """Save binary images (N, H·W) as a grid PNG."""
    plt = pyplot()
    n = samples.shape[0]
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols, n_rows + 0.4 * bool(title)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(samples[i].reshape(shape), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def entropy_profile(profile: np.ndarray, path: str, shape=None, label: str = "von Neumann entropy") -> None:
    """Save the entanglement entropy (nats) along the chain's bonds; row boundaries marked for images."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(np.arange(len(profile)), profile, lw=1.2, label=label)
    if shape is not None and len(shape) == 2:
        for r in range(1, shape[0]):
            ax.axvline(r * shape[1] - 1, color="0.85", lw=0.5, zorder=0)
    ax.set_xlabel("bond (chain position)")
    ax.set_ylabel("entropy (nats)")
    ax.set_title("entanglement entropy along the chain")
    ax.legend(loc="upper right")
    save_figure(fig, path)


def save_figure(fig, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
