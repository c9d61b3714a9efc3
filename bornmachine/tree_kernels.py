"""Pure tensor kernels for binary tree tensor networks (TTN), shared by :class:`~bornmachine.ttn.TTN`
and the tree sweep trainer.

Conventions: ``tree`` is a :class:`~bornmachine.tree.Tree` over n sites; ``tensors`` is a list of
n − 1 tensors, ``tensors[v − n]`` belonging to internal node v, of shape (d_child0, d_child1,
d_parent) where a leaf child contributes its physical dimension 2 and the root's parent leg has
dimension 1 (like the MPS boundary bonds D_0 = D_n = 1). Ψ(x) is the contraction of all tensors with
the one-hot vectors e_{x_s} on the leaves. Configurations ``x`` are int64 tensors (N, n) in site
order. "Canonical at the root" means every non-root tensor, reshaped (d_child0·d_child1, d_parent),
has orthonormal columns (an isometry towards the root) and the root tensor has unit norm, so Σ Ψ² = 1
and every subtree's states on its parent leg are orthonormal.

Per-sample vectors of nodes (inside vectors, sampling states) hold the samples along the last axis,
(d, N): a node's contraction is then a GEMM of shape (d·d', D) @ (D, N), which runs near matmul speed
on CPU (measured: 70 % of a 1024³ matmul at D = 16, against 25–30 % for the transposed layout).
Subtrees of a few sites are contracted once for all their 2^k configurations (:func:`subtree_tables`)
and looked up.

Every function works on any device and real dtype, keeps running log-norms (no raw products of many
factors) and leaves its inputs unchanged. Logs are natural.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import NamedTuple

import torch

from .linalg import generator_device
from .tree import Tree

Tensors = list  # list[torch.Tensor], tensors[v - n] of shape (d_c0, d_c1, d_parent)


def _tiny(dtype) -> float:
    return torch.finfo(dtype).tiny


def node_dims(tree: Tree, tensors: Tensors) -> list[int]:
    """Dimension of every node's parent leg (2 for leaves, 1 for the root)."""
    n = tree.n_sites
    return [2] * n + [int(t.shape[2]) for t in tensors]


def check_tensors(tree: Tree, tensors: Tensors) -> None:
    """Raise ``ValueError``/``TypeError`` unless ``tensors`` fit ``tree`` (shapes, dtype, finiteness)."""
    n = tree.n_sites
    if len(tensors) != n - 1:
        raise ValueError(f"a TTN over {n} sites has {n - 1} internal tensors, got {len(tensors)}")
    for i, t in enumerate(tensors):
        v = n + i
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensor of node {v} is a {type(t).__name__}, not a torch tensor")
        if t.dim() != 3:
            raise ValueError(f"tensor of node {v} has shape {tuple(t.shape)}; expected (d_child0, d_child1, d_parent)")
        if not t.is_floating_point():
            raise TypeError(f"tensor of node {v} has dtype {t.dtype}; expected a real floating dtype")
        if not torch.isfinite(t).all():
            raise ValueError(f"tensor of node {v} holds NaN or inf")
        if t.dtype != tensors[0].dtype or t.device != tensors[0].device:
            raise ValueError("all tensors must share one dtype and device")
    dims = node_dims(tree, tensors)
    for i, t in enumerate(tensors):
        v = n + i
        for s in (0, 1):
            c = int(tree.children[v, s])
            if t.shape[s] != dims[c]:
                kind = "site" if c < n else "node"
                raise ValueError(f"tensor of node {v} has leg {s} of dimension {t.shape[s]}, but its child {kind} "
                                 f"{c} has dimension {dims[c]}")
    if dims[tree.root] != 1:
        raise ValueError(f"the root tensor (node {tree.root}) must have parent dimension 1, got {dims[tree.root]}")


# --------------------------------------------------------------------------------------------------
# Gauge: QR moves of the orthogonality centre
# --------------------------------------------------------------------------------------------------
def _apply_to_leg(t: torch.Tensor, leg: int, r: torch.Tensor) -> torch.Tensor:
    """Contract matrix r (r', d) into leg ``leg`` of the 3-leg tensor t (the leg becomes r')."""
    if leg == 0:
        return torch.einsum("rx,xyp->ryp", r, t)
    if leg == 1:
        return torch.einsum("ry,xyp->xrp", r, t)
    return torch.einsum("rp,xyp->xyr", r, t)


def _qr_leg(t: torch.Tensor, leg: int):
    """QR of t with ``leg`` as the column index: returns (Q with that leg of dim r, R (r, d_leg))."""
    perm = [a for a in range(3) if a != leg] + [leg]
    tp = t.permute(*perm)
    rows = tp.shape[0] * tp.shape[1]
    q, r = torch.linalg.qr(tp.reshape(rows, tp.shape[2]))
    q = q.reshape(tp.shape[0], tp.shape[1], -1)
    inverse = [perm.index(a) for a in range(3)]
    return q.permute(*inverse).contiguous(), r


def move_center(tree: Tree, tensors: Tensors, src: int, dst: int) -> float:
    """Move the orthogonality centre from internal node ``src`` to the adjacent internal node ``dst``
    in place (on the list, never on the tensors themselves); returns ln of the norm taken out."""
    n = tree.n_sites
    if tree.parent[src] == dst:  # up: src becomes an isometry towards its parent
        leg_src, leg_dst = 2, int(tree.slot[src])
    elif tree.parent[dst] == src:  # down
        leg_src, leg_dst = int(tree.slot[dst]), 2
    else:
        raise ValueError(f"nodes {src} and {dst} are not adjacent")
    q, r = _qr_leg(tensors[src - n], leg_src)
    norm = torch.linalg.matrix_norm(r)
    tensors[src - n] = q
    tensors[dst - n] = _apply_to_leg(tensors[dst - n], leg_dst, r / norm.clamp_min(_tiny(r.dtype)))
    return math.log(norm.item()) if norm > 0 else -math.inf


def path_to_root(tree: Tree, v: int) -> list[int]:
    path = [v]
    while path[-1] != tree.root:
        path.append(int(tree.parent[path[-1]]))
    return path


def canonicalize(tree: Tree, tensors: Tensors, center: int | None = None) -> tuple[Tensors, float]:
    """Canonical form with orthogonality centre at internal node ``center`` (root by default), unit norm.

    Every other tensor becomes an isometry pointing towards the centre. Bond dimensions never grow
    (reduced QR). Returns the new list and ln‖Ψ‖ of the input (ln Z = 2 × that), O(n D⁴).
    """
    n = tree.n_sites
    center = tree.root if center is None else int(center)
    out = list(tensors)
    log_scale = 0.0
    for v in tree.internal:  # children first
        if v != tree.root:
            log_scale += move_center(tree, out, v, int(tree.parent[v]))
    path = path_to_root(tree, center)[::-1]  # root … center
    for a, b in zip(path[:-1], path[1:]):
        log_scale += move_center(tree, out, a, b)
    norm = torch.linalg.vector_norm(out[center - n])
    log_scale += math.log(norm.item()) if norm > 0 else -math.inf
    out[center - n] = out[center - n] / norm.clamp_min(_tiny(norm.dtype))
    return out, log_scale


# --------------------------------------------------------------------------------------------------
# Amplitudes: level-batched bottom-up contraction
# --------------------------------------------------------------------------------------------------
def _level_groups(tree: Tree, tensors: Tensors):
    """Internal nodes by height, split into groups of equal tensor shape (batched together)."""
    n = tree.n_sites
    for level in tree.levels:
        groups = defaultdict(list)
        for v in level:
            groups[tuple(tensors[v - n].shape)].append(v)
        yield from groups.values()


#: Internal nodes with at least this many tensor entries are contracted one by one (their GEMM is large
#: enough to run near matmul speed); smaller nodes of one level and shape share one batched product.
_LARGE_NODE = 1024
#: Elements of the intermediate of one row block of :func:`_contract_nodes` (1 MiB in float64, half of a 2 MiB
#: L2: it stays in the CPU's cache between the GEMM that writes it and the pass that reduces it).
_BLOCK_ELEMENTS = 1 << 17
#: Rows per block of :func:`log_amplitude` (bounds its memory: about rows·Σ_v d_v numbers).
_ROW_BLOCK = 4096


def _contract_nodes(t: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor) -> torch.Tensor:
    """out[g, p, i] = Σ_ab t[g, a, b, p] u0[g, a, i] u1[g, b, i] for G nodes: t (G, d0, d1, dp), u0 (G, d0, N),
    u1 (G, d1, N) → (G, dp, N).

    Samples run along the last (contiguous) axis: the larger child leg is contracted by a GEMM
    (d_other·dp, d_big) @ (d_big, rows), which on CPU runs near matmul speed in this layout, and the smaller
    leg by one in-place multiply and a sum, over blocks of rows small enough to stay in cache."""
    if t.shape[2] > t.shape[1]:  # contract the larger leg (the GEMM's inner dimension) first
        t, u0, u1 = t.transpose(1, 2), u1, u0
    g, d_big, d_small, dp = t.shape
    n_rows = u0.shape[2]
    if n_rows == 0:
        return u0.new_zeros(g, dp, 0)
    lhs = t.permute(0, 2, 3, 1).reshape(g, d_small * dp, d_big)
    in_place = not (torch.is_grad_enabled() and (t.requires_grad or u0.requires_grad or u1.requires_grad))
    block = max(64, _BLOCK_ELEMENTS // (g * d_small * dp))
    out, parts = u0.new_empty(g, dp, n_rows), []
    work = u0.new_empty(g * d_small * dp * min(block, n_rows)) if in_place else None  # one block's products
    for start in range(0, n_rows, block):
        rows = slice(start, start + block)
        if in_place:  # products into the one work buffer: no allocation (and page faults) per block
            m = min(block, n_rows - start)
            w = work[:g * d_small * dp * m].view(g, d_small * dp, m)
            torch.bmm(lhs, u0[:, :, rows], out=w) if g > 1 else torch.mm(lhs[0], u0[0, :, rows], out=w[0])
            torch.sum(w.view(g, d_small, dp, m).mul_(u1[:, :, None, rows]), 1, out=out[:, :, rows])
        else:  # autograd: no in-place writes
            w = torch.bmm(lhs, u0[:, :, rows]).view(g, d_small, dp, -1)
            parts.append((w * u1[:, :, None, rows]).sum(1))
    return out if in_place else torch.cat(parts, 2)


#: Subtrees of at most this many sites are evaluated by table lookup (all 2^k configurations contracted once).
_TABLE_SITES = 8


def _subtree_leaves(tree: Tree) -> list[list[int]]:
    """The sites below every node in depth-first (left-to-right) order."""
    leaves: list[list[int]] = [[s] for s in range(tree.n_sites)] + [[] for _ in range(tree.n_sites - 1)]
    for v in tree.internal:
        leaves[v] = leaves[int(tree.children[v, 0])] + leaves[int(tree.children[v, 1])]
    return leaves


def subtree_tables(tree: Tree, tensors: Tensors, max_sites: int = _TABLE_SITES) -> dict:
    """Lookup tables of the internal nodes whose subtree has k ≤ ``max_sites`` sites.

    Returns {node: (table (d_v, 2^k), log_norm (2^k,))}: column i of the table is the normalised vector of
    the subtree on its parent leg for the configuration whose bits, read in depth-first order (first site
    most significant), spell i, and log_norm[i] the log of the norm taken out. Nodes of one height, shape
    and subtree sizes are contracted together; O(Σ_v 2^k d0 d1 dp).
    """
    n = tree.n_sites
    dtype, device = tensors[0].dtype, tensors[0].device
    sizes = [len(leaves) for leaves in _subtree_leaves(tree)]
    leaf = (torch.eye(2, dtype=dtype, device=device), torch.zeros(2, dtype=dtype, device=device))
    tables: dict = {}
    for level in tree.levels:
        groups = defaultdict(list)
        for v in level:
            c0, c1 = int(tree.children[v, 0]), int(tree.children[v, 1])
            if sizes[v] <= max_sites:
                groups[(tuple(tensors[v - n].shape), sizes[c0], sizes[c1])].append(v)
        for (_, k0, k1), nodes in groups.items():
            t = torch.stack([tensors[v - n] for v in nodes])
            parts = [[tables.get(int(tree.children[v, s]), leaf) for v in nodes] for s in (0, 1)]
            tab0, tab1 = (torch.stack([p[0] for p in part]) for part in parts)
            ln0, ln1 = (torch.stack([p[1] for p in part]) for part in parts)
            out = torch.einsum("gai,gbj,gabp->gpij", tab0, tab1, t).reshape(len(nodes), t.shape[3], -1)
            norm = (out * out).sum(1).sqrt()
            log_norm = (ln0[:, :, None] + ln1[:, None, :]).reshape(len(nodes), -1) + torch.log(norm)
            out = out / norm.clamp_min(_tiny(dtype)).unsqueeze(1)
            for i, v in enumerate(nodes):
                tables[v] = (out[i], log_norm[i])
    return tables


#: Sampling draws a table subtree from the weights of all its 2^k configurations, one product (2^k, d) @ (d, rows)
#: (at D = 16 and 8 sites the size of a contracted node's product, which it replaces together with the
#: nodes below); at most 8 (configurations are decoded as uint8).
_SAMPLE_TABLE_SITES = 8


def _table_sites(n_rows: int) -> int:
    """Table subtrees pay while they have fewer configurations than there are rows."""
    return min(_TABLE_SITES, max(0, n_rows.bit_length() - 2))


def root_amplitude(tree: Tree, tensors: Tensors, x: torch.Tensor, tables: dict | None = None):
    """Bottom-up contraction of the tree with a batch x (N, n), samples along the last axis.

    Returns ``(root, log_scale)``, both (N,): the root's normalised value and the sum of the logs of all
    norms taken out on the way (every node's vector (d_v, N) is divided by its norm), so Ψ(x) = root ×
    exp(log_scale). Small subtrees are read from ``tables`` (:func:`subtree_tables`, built here if None),
    larger nodes contracted one by one, the rest of one height and shape together
    (:func:`_contract_nodes`); vectors are dropped once used. Differentiable w.r.t. ``tensors``.
    """
    n = tree.n_sites
    dtype, device = tensors[0].dtype, tensors[0].device
    n_samples = x.shape[0]
    tiny = _tiny(dtype)
    if tables is None:
        tables = subtree_tables(tree, tensors, _table_sites(n_samples))
    bits = x.to(device=device, dtype=torch.uint8).T.contiguous()  # (n, N): rows of sites, one cheap transpose
    log_scale = torch.zeros(n_samples, dtype=dtype, device=device)
    vectors: list[torch.Tensor | None] = [None] * (2 * n - 1)
    # leaves whose parent is contracted: their one-hot vectors (2, N)
    leaves = [s for s in range(n) if int(tree.parent[s]) not in tables]
    if leaves:
        on = bits[leaves].to(dtype)
        for s, pair in zip(leaves, torch.stack([1.0 - on, on], dim=1).unbind(0)):
            vectors[s] = pair
    # table nodes whose parent is contracted (or the root): their vectors, looked up
    subtree_leaves = _subtree_leaves(tree)
    by_size = defaultdict(list)
    for v in tables:
        if int(tree.parent[v]) not in tables:
            by_size[len(subtree_leaves[v])].append(v)
    for k, nodes in by_size.items():
        sites = torch.tensor([subtree_leaves[v] for v in nodes], device=device)  # (F, k)
        small = torch.uint8 if k <= 8 else torch.int64  # up to 8 sites bits · powers fit uint8 (no int64 copy)
        powers = (2 ** torch.arange(k - 1, -1, -1, device=device)).to(small)
        index = (bits[sites].to(small) * powers[:, None]).sum(1)  # (F, N) int64 configuration numbers
        log_norms = torch.stack([tables[v][1] for v in nodes])  # (F, 2^k)
        log_scale += torch.gather(log_norms, 1, index).sum(0)
        for f, v in enumerate(nodes):
            vectors[v] = tables[v][0].index_select(1, index[f])
    for group in _level_groups(tree, tensors):
        group = [v for v in group if v not in tables]
        if not group:
            continue
        c0 = [int(tree.children[v, 0]) for v in group]
        c1 = [int(tree.children[v, 1]) for v in group]
        if tensors[group[0] - n].numel() >= _LARGE_NODE:
            batches = [[i] for i in range(len(group))]
        else:
            batches = [list(range(len(group)))]
        for batch in batches:
            t, u0, u1 = (torch.stack([items[i] for i in batch]) if len(batch) > 1 else items[batch[0]].unsqueeze(0)
                         for items in ([tensors[v - n] for v in group], [vectors[c] for c in c0],
                                       [vectors[c] for c in c1]))
            out = _contract_nodes(t, u0, u1)  # (G, dp, N)
            norm = (out * out).sum(1).sqrt()  # (G, N); vector_norm over a non-contiguous axis is ~10x slower
            log_scale = log_scale + torch.log(norm).sum(0)
            scale = norm.clamp_min(tiny).unsqueeze(1)
            out = out / scale if out.requires_grad else out.div_(scale)  # in place unless autograd tracks it
            for i, o in zip(batch, out.unbind(0)):
                vectors[group[i]] = o
        for c in c0 + c1:
            vectors[c] = None
    return vectors[tree.root][0], log_scale


def log_amplitude(tree: Tree, tensors: Tensors, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign and ln|Ψ(x)| for x (N, n), O(N n D³), in blocks of rows; a zero amplitude gives sign 0 and −inf."""
    tables = subtree_tables(tree, tensors, _table_sites(x.shape[0]))
    signs, logs = [], []
    for start in range(0, x.shape[0], _ROW_BLOCK):
        root, log_scale = root_amplitude(tree, tensors, x[start:start + _ROW_BLOCK], tables)
        signs.append(torch.sign(root))
        logs.append(log_scale + torch.log(root.abs()))
    if not signs:
        empty = torch.zeros(0, dtype=tensors[0].dtype, device=tensors[0].device)
        return empty, empty
    return torch.cat(signs), torch.cat(logs)


def log_norm(tree: Tree, tensors: Tensors) -> torch.Tensor:
    """ln Z (Z = Σ_v Ψ(v)²) by bottom-up reduced density matrices with running trace normalisation.

    Leaves contribute identities; O(n D⁴); differentiable (used by the gradient trainer).
    """
    n = tree.n_sites
    dtype, device = tensors[0].dtype, tensors[0].device
    rho: list[torch.Tensor | None] = [None] * (2 * n - 1)  # None: identity (leaves)
    log_z = torch.zeros((), dtype=dtype, device=device)
    for group in _level_groups(tree, tensors):
        # split further by which children are leaves (identity densities)
        kinds = defaultdict(list)
        for v in group:
            kinds[(int(tree.children[v, 0]) < n, int(tree.children[v, 1]) < n)].append(v)
        for (leaf0, leaf1), nodes in kinds.items():
            t = torch.stack([tensors[v - n] for v in nodes])  # (G, d0, d1, dp)
            g, d0, d1, dp = t.shape
            y = t
            if not leaf0:
                r0 = torch.stack([rho[int(tree.children[v, 0])] for v in nodes])  # (G, d0, d0)
                y = torch.bmm(r0.transpose(1, 2), y.reshape(g, d0, d1 * dp)).view(g, d0, d1, dp)
            if not leaf1:
                r1 = torch.stack([rho[int(tree.children[v, 1])] for v in nodes])  # (G, d1, d1)
                y = torch.einsum("gabp,gbc->gacp", y, r1)
            out = torch.bmm(y.reshape(g, d0 * d1, dp).transpose(1, 2), t.reshape(g, d0 * d1, dp))  # (G, dp, dp)
            tr = torch.diagonal(out, dim1=1, dim2=2).sum(-1)
            log_z = log_z + torch.log(tr).sum()
            out = out / tr[:, None, None]
            for i, v in enumerate(nodes):
                rho[v] = out[i]
    return log_z


# --------------------------------------------------------------------------------------------------
# Environments of partially known configurations (marginals, conditionals)
# --------------------------------------------------------------------------------------------------
# An environment of node v summarises its subtree with the known leaves fixed and the unknown ones
# summed: E_v = Σ_{unknown} S_v S_vᵀ (d_v × d_v per row), S_v the subtree's vector on v's parent
# leg. It is stored as ("id", None) when no row knows any leaf below v (E = I in canonical form),
# ("pure", a) when every leaf below is known in every row (E = a aᵀ, a the normalised amplitude
# vector), and ("mixed", E) otherwise (trace 1), with a log-scale (N,) such that the true E is
# exp(log_scale) × the stored one (for "pure": exp(log_scale) a aᵀ).
def _combine(t: torch.Tensor, e0, e1):
    """Environment of a node with tensor t (d0, d1, dp) from its children's environments."""
    k0, a0 = e0
    k1, a1 = e1
    if k0 == "id" and k1 == "id":
        return "id", None
    if k0 == "pure" and k1 == "pure":
        w = (a0 @ t.reshape(t.shape[0], -1)).view(-1, t.shape[1], t.shape[2])
        return "pure", torch.einsum("nb,nbp->np", a1, w)
    if k0 == "id" or (k0 == "pure" and k1 == "mixed"):  # put the simpler environment second
        return _combine(t.permute(1, 0, 2), e1, e0)
    d0, d1, dp = t.shape
    if k0 == "pure":  # k1 == "id": E = Wᵀ W with W = a0·t (N, d1, dp)
        w = (a0 @ t.reshape(d0, d1 * dp)).view(-1, d1, dp)
        return "mixed", w.transpose(1, 2) @ w
    # k0 == "mixed"
    if k1 == "pure":
        w = torch.einsum("abp,nb->nap", t, a1)  # (N, d0, dp)
        return "mixed", w.transpose(1, 2) @ a0 @ w
    return "mixed", _mixed_environment(t, a0, a1 if k1 == "mixed" else None)


_BLOCK_ELEMENTS = 1 << 17  # entries of _mixed_environment's intermediate (rows, d0·dp·d1) per block: 1 MiB of float64


def _mixed_environment(t: torch.Tensor, e0: torch.Tensor, e1: torch.Tensor | None) -> torch.Tensor:
    """E[n] = Σ t[a, b, p] E0[n, a, a'] E1[n, b, b'] t[a', b', p'] (N, dp, dp) for t (d0, d1, dp), E0 (N, d0, d0)
    and E1 (N, d1, d1) or None (the identity); E0 and E1 symmetric, as every environment is.

    Three products with contiguous operands (E0 on the a leg, E1 on the b leg, t on both), over blocks of rows
    whose intermediate stays in the CPU's cache: these products are memory-bound (inner dimension d), and done
    on all rows at once they ran at half the speed (a GPU takes all rows in one block).
    """
    d0, d1, dp = t.shape
    t_apb = t.permute(0, 2, 1).reshape(d0, dp * d1)
    t_flat = t.reshape(d0 * d1, dp)
    n_rows = e0.shape[0]
    step = max(1, _BLOCK_ELEMENTS // (d0 * d1 * dp) if e0.device.type == "cpu" else n_rows)
    blocks = []
    for start in range(0, max(n_rows, 1), step):  # one (empty) block when there are no rows
        e0_block = e0[start:start + step]
        rows = e0_block.shape[0]
        y = (e0_block @ t_apb).view(rows, d0 * dp, d1)  # [n, a', p, b] = Σ_a E0[n, a', a] t[a, b, p]
        if e1 is not None:
            y = torch.bmm(y, e1[start:start + step])  # [n, a', p, b']
        y = y.view(rows, d0, dp, d1).transpose(1, 2).reshape(rows * dp, d0 * d1)  # [n, p, a', b']
        blocks.append((y @ t_flat).view(rows, dp, dp))
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


def environments(tree: Tree, tensors: Tensors, x: torch.Tensor, known: torch.Tensor):
    """Environments of every node for x (N, n) with known (N, n) bool (see the comment above).

    ``tensors`` must be canonical at the root. Returns ``(envs, log_scales)``, lists over nodes;
    subtrees without known leaves cost nothing, fully known ones O(N D³), the rest O(N D⁴).
    """
    n = tree.n_sites
    dtype, device = tensors[0].dtype, tensors[0].device
    n_samples = x.shape[0]
    tiny = _tiny(dtype)
    onehot = torch.nn.functional.one_hot(x.to(device=device, dtype=torch.int64), 2).to(dtype)
    any_known = known.any(0).tolist()
    all_known = known.all(0).tolist()
    envs: list = [None] * (2 * n - 1)
    scales: list = [None] * (2 * n - 1)
    zeros = torch.zeros(n_samples, dtype=dtype, device=device)
    eye2 = torch.eye(2, dtype=dtype, device=device)
    for s in range(n):
        scales[s] = zeros
        if all_known[s]:
            envs[s] = ("pure", onehot[:, s])
        elif not any_known[s]:
            envs[s] = ("id", None)
        else:
            fixed = onehot[:, s, :, None] * onehot[:, s, None, :]
            envs[s] = ("mixed", torch.where(known[:, s, None, None], fixed, eye2 / 2))
            scales[s] = torch.where(known[:, s], zeros, zeros + math.log(2.0))
    for v in tree.internal:
        c0, c1 = int(tree.children[v, 0]), int(tree.children[v, 1])
        kind, val = _combine(tensors[v - n], envs[c0], envs[c1])
        scale = scales[c0] + scales[c1]
        if kind == "pure":
            norm = torch.linalg.vector_norm(val, dim=1)
            scale = scale + 2 * torch.log(norm)
            val = val / norm.clamp_min(tiny)[:, None]
        elif kind == "mixed":
            tr = torch.diagonal(val, dim1=1, dim2=2).sum(-1)
            scale = scale + torch.log(tr)
            val = val / tr.clamp_min(tiny)[:, None, None]
        envs[v] = (kind, val)
        scales[v] = scale
    return envs, scales


def marginal_log_prob(tree: Tree, tensors: Tensors, sites: list[int], values: torch.Tensor) -> torch.Tensor:
    """ln p(x_S) = ln Σ_{other sites} Ψ² for tensors canonical at the root, values (N, |S|) int64.

    Only nodes with a site of S below them are contracted.
    """
    n = tree.n_sites
    n_samples = values.shape[0]
    device = tensors[0].device
    x = torch.zeros(n_samples, n, dtype=torch.int64, device=device)
    x[:, sites] = values.to(device)
    known = torch.zeros(n_samples, n, dtype=torch.bool, device=device)
    known[:, sites] = True
    envs, scales = environments(tree, tensors, x, known)
    kind, val = envs[tree.root]
    if kind == "id":
        return torch.zeros(n_samples, dtype=tensors[0].dtype, device=device)
    value = val[:, 0] ** 2 if kind == "pure" else val[:, 0, 0]
    return scales[tree.root] + torch.log(value)


# --------------------------------------------------------------------------------------------------
# Exact sampling, top-down through the tree
# --------------------------------------------------------------------------------------------------
def _categorical_columns(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index k ~ weights[k, i] / Σ_k weights[k, i] for each column i, from uniforms u (N,) in [0, 1): the
    first k whose cumulative weight reaches u·Σ_k (≤ Σ_k, so k < K; summed along each column's own axis)."""
    cum = torch.cumsum(weights.double().T, dim=1)  # (N, K)
    return torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(1)).squeeze(1)


def _row_blocks(tree: Tree, n_rows: int, chunk: int, generator, device):
    """Blocks [start, start + rows) of ``chunk`` rows with their uniforms (rows, 2n − 1) float64, drawn from
    ``generator`` block after block."""
    for start in range(0, n_rows, chunk):
        rows = min(chunk, n_rows - start)
        yield start, rows, torch.rand(rows, 2 * tree.n_sites - 1, generator=generator, dtype=torch.float64,
                                      device=generator_device(generator, device)).to(device)


class _Draw(NamedTuple):
    """A draw of :func:`sample`: all sites below a table node (or a leaf) from its parent-leg vector v (d, N),
    by the weights (amplitudes @ v)² of the 2^k configurations."""
    amplitudes: torch.Tensor  # (2^k, d): the table's columns scaled by e^{ln_i − max ln}, transposed; when
    #                           split, rows ordered (child-1 bits, child-0 bits)
    split: tuple | None  # (2^k0, 2^k1): drawn in two steps, the bits below child 0, then child 1's
    table: torch.Tensor  # (d, 2^k): the normalised vector of each configuration
    slot: int  # its uniforms: column slot (and slot + 1 when split) of u


class _Node(NamedTuple):
    """A contracted node of :func:`sample`, t (d0, d1, dp), as the matrices of its products with v, a0."""
    slot: int  # its uniform: column slot of u
    m: torch.Tensor  # (d0·d1, dp): M = t·v
    r: torch.Tensor | None  # (dp·d1, d0): r = Σ_p v_p (t·a0)_p after a contracted child 0 (None: after a draw,
    #                         r = a0ᵀ M from the M still in the buffer)
    a: torch.Tensor  # (d1·dp, d0): the amplitude vector Σ_b a1_b (t·a0)_b


class _Plan(NamedTuple):
    """What :func:`sample` prepares once for all row blocks."""
    draws: dict  # {table node or leaf: _Draw}, in depth-first order
    nodes: dict  # {contracted node: _Node}
    n_uniforms: int
    log_norms: torch.Tensor  # (Σ 2^k,) float64: the draws' tables' log norms, one after the other
    offsets: torch.Tensor  # (n_draws,): where each draw's log norms start
    bits: dict  # {k: (the draws of k sites (F,), their sites (F·k,))}


#: Table draws with more configurations than this go in two steps (no cumulative sum over 2^k rows).
_FLAT_DRAW = 64


def _sample_plan(tree: Tree, tensors: Tensors, tables: dict) -> _Plan:
    """The draws and contracted nodes of :func:`sample`, their uniforms numbered in depth-first order."""
    n = tree.n_sites
    dtype, device = tensors[0].dtype, tensors[0].device
    leaf = (torch.eye(2, dtype=dtype, device=device), torch.zeros(2, dtype=dtype, device=device))
    subtree_leaves = _subtree_leaves(tree)
    draws, nodes, slot, log_norms = {}, {}, 0, []
    todo = [tree.root]
    while todo:
        c = todo.pop()
        if c >= n and c not in tables:
            t = tensors[c - n]
            c0 = int(tree.children[c, 0])
            r = None if c0 < n or c0 in tables else t.permute(2, 1, 0).reshape(-1, t.shape[0]).contiguous()
            nodes[c] = _Node(slot, t.reshape(-1, t.shape[2]), r, t.permute(1, 2, 0).reshape(-1, t.shape[0]).contiguous())
            slot += 1
            todo += [int(tree.children[c, 1]), c0]
            continue
        table, log_norm = tables.get(c, leaf)
        amplitudes = (table * torch.exp(log_norm - log_norm.max())[None, :]).T
        split = None
        if amplitudes.shape[0] > _FLAT_DRAW:
            split = tuple(2 ** len(subtree_leaves[int(tree.children[c, s])]) for s in (0, 1))
            amplitudes = amplitudes.reshape(*split, -1).transpose(0, 1).reshape(amplitudes.shape)
        draws[c] = _Draw(amplitudes.contiguous(), split, table, slot)
        log_norms.append(log_norm.double())
        slot += 1 if split is None else 2
    order = list(draws)
    by_size = defaultdict(list)
    for i, c in enumerate(order):
        by_size[len(subtree_leaves[c])].append(i)
    bits = {k: (torch.tensor(which, device=device),
                torch.tensor([s for i in which for s in subtree_leaves[order[i]]], device=device))
            for k, which in by_size.items()}
    offsets = torch.tensor([0] + [x.numel() for x in log_norms[:-1]], device=device).cumsum(0)
    return _Plan(draws, nodes, slot, torch.cat(log_norms), offsets, bits)


def sample(tree: Tree, tensors: Tensors, n_samples: int, generator: torch.Generator | None = None,
           chunk: int = 4096):
    """Exact independent samples from p = Ψ² of tensors canonical at the root (unit norm).

    Returns x (n_samples, n) int64 and ln p(x) (n_samples,) float64, vectorised over samples, samples
    along the last axis. Top-down from the root, a node u is entered with a unit vector v on its parent
    leg (the state of its subtree is Σ_p v_p S_p): with M = t_u·v (d0, d1, N), child 0's state is the
    mixture over k of the columns M[:, k] with weights ‖M[:, k]‖² (canonical form: child 1's subtree
    states are orthonormal); draw k, sample child 0's subtree from M[:, k], then child 1's from
    a0ᵀ M, a0 the amplitude vector of the drawn child-0 configuration, and return the node's amplitude
    vector. A subtree of a lookup table (:func:`subtree_tables`, up to ``_SAMPLE_TABLE_SITES`` sites; a leaf
    is one of 2 configurations) is drawn from the weights (table_iᵀ v)² e^{2 ln_i} of its 2^k
    configurations, in one step, or for more than ``_FLAT_DRAW`` in two (the bits below the table node's
    child 0 from the weights summed over child 1's, then child 1's given them). O(N n D³). Rows are
    processed in blocks of ``chunk``, each drawing its uniforms, (rows, n_draws) float64, from
    ``generator`` in turn.
    """
    n_samples = int(n_samples)
    device = tensors[0].device
    with torch.no_grad():  # samples are not differentiable: the blocks work in place
        tables = subtree_tables(tree, tensors, min(_SAMPLE_TABLE_SITES, _table_sites(min(n_samples, chunk))))
        plan = _sample_plan(tree, tensors, tables)
        parts = []
        for start in range(0, n_samples, chunk):
            u = torch.rand(min(chunk, n_samples - start), plan.n_uniforms, generator=generator, dtype=torch.float64,
                           device=generator_device(generator, device))
            parts.append(_sample_free_block(tree, tensors, plan, u.to(device)))
    if not parts:
        return (torch.zeros(0, tree.n_sites, dtype=torch.int64, device=device),
                torch.zeros(0, dtype=torch.float64, device=device))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _sample_free_block(tree: Tree, tensors: Tensors, plan: _Plan, u: torch.Tensor):
    """:func:`sample` on one block of rows with its uniforms u (rows, n_uniforms).

    The large intermediates, (d·d', rows), live in two buffers that every node reuses, so they stay in
    cache: M = t·v (later t·a0) in ``first``, M² and the draws' weights in ``second``. After a draw below
    child 0, r = a0ᵀ M reduces the M still in ``first``; after a contracted child 0 (whose subtree has
    overwritten it), r = Σ_p v_p (t·a0)_p costs one more product."""
    n = tree.n_sites
    dtype, device = tensors[0].dtype, tensors[0].device
    tiny = _tiny(dtype)
    rows = u.shape[0]
    u = u.T.contiguous()  # one row of uniforms per draw (a column would be read with a stride)
    shapes = [tensors[v - n].shape for v in plan.nodes]
    first = torch.empty(max([d1 * max(d0, dp) for d0, d1, dp in shapes] + [1]) * rows, dtype=dtype, device=device)
    second = torch.empty(max([d0 * d1 for d0, d1, _ in shapes] + [d.amplitudes.shape[0] for d in plan.draws.values()])
                         * rows, dtype=dtype, device=device)

    def buffer(buf, *shape):
        return buf[:math.prod(shape)].view(*shape)

    norms = []  # (rows,) taken out at the contracted nodes
    configs: dict = {}  # draw node → configuration (rows,)

    def draw(c, vec):
        """All sites below draw node c from vec (d_c, rows); returns the configuration's vector (d_c, rows)."""
        d = plan.draws[c]
        weights = torch.mm(d.amplitudes, vec, out=buffer(second, d.amplitudes.shape[0], rows)).square_()
        if d.split is None:
            config = _categorical_columns(weights, u[d.slot])
        else:
            n0, n1 = d.split
            top = _categorical_columns(weights.view(n1, n0, rows).sum(0), u[d.slot])
            rest = weights.view(n1, n0, rows).gather(1, top.view(1, 1, rows).expand(n1, 1, rows)).view(n1, rows)
            config = torch.add(_categorical_columns(rest, u[d.slot + 1]), top, alpha=n1)
        configs[c] = config
        return d.table.gather(1, config.expand(d.table.shape[0], rows))

    def descend(c, vec, norm2):
        """Sample below child c from its parent-leg vector (d_c, rows) of squared norms ``norm2()`` (rows,):
        a draw node at once (its vector returned; a draw does not depend on the vector's scale), a contracted
        node pushed onto the stack with the normalised vector (None returned)."""
        if c in plan.draws:
            return draw(c, vec)
        stack.append([c, 0, vec.mul_(norm2().clamp_min_(tiny).rsqrt_()), None])
        return None

    # explicit stack of frames [node, stage, v (unit), a0]; results are passed back through `ret`
    root = torch.ones(1, rows, dtype=dtype, device=device)
    stack: list = [[tree.root, 0, root, None]] if tree.root in plan.nodes else []
    ret = None if stack else draw(tree.root, root)
    while stack:
        frame = stack[-1]
        v_node, stage = frame[0], frame[1]
        node = plan.nodes[v_node]
        d0, d1, dp = tensors[v_node - n].shape
        if stage == 0:
            m = torch.mm(node.m, frame[2], out=buffer(first, d0 * d1, rows)).view(d0, d1, rows)
            weights = torch.mul(m, m, out=buffer(second, d0, d1, rows)).sum(0)  # (d1, rows)
            k = _categorical_columns(weights, u[node.slot]).view(1, 1, rows)
            col = m.gather(1, k.expand(d0, 1, rows)).view(d0, rows)
            frame[1] = 1
            ret = descend(int(tree.children[v_node, 0]), col, lambda: weights.gather(0, k[0]).view(rows))
        elif stage == 1:
            frame[1], frame[3] = 2, ret
            if node.r is None:  # M is still in `first`
                r = buffer(first, d0, d1, rows).mul_(ret[:, None, :]).sum(0)
            else:
                w = torch.mm(node.r, ret, out=buffer(first, dp * d1, rows)).view(dp, d1, rows)
                r = w.mul_(frame[2][:, None, :]).sum(0)
            ret = descend(int(tree.children[v_node, 1]), r, lambda: (r * r).sum(0))
        else:  # the amplitude vector of the drawn subtree configuration
            w = torch.mm(node.a, frame[3], out=buffer(first, d1 * dp, rows)).view(d1, dp, rows)
            a = w.mul_(ret[:, None, :]).sum(0)
            norm = (a * a).sum(0).sqrt_()
            norms.append(norm)
            ret = a.div_(norm.clamp_min(tiny))
            stack.pop()
    # ret: the normalised root amplitude (±1); Ψ(x) = ret · Π norms · Π e^{log_norm[config]}
    # (in place where the temporaries are large: fresh memory costs page faults)
    conf = torch.stack([configs[c] for c in plan.draws])  # (n_draws, rows)
    out, bits = torch.empty(n, rows, dtype=torch.uint8, device=device), conf.to(torch.uint8)  # tables ≤ 8 sites
    for k, (which, sites) in plan.bits.items():
        shifts = torch.arange(k - 1, -1, -1, dtype=torch.uint8, device=device)
        out[sites] = ((bits[which, None, :] >> shifts[:, None]) & 1).view(-1, rows)
    log_scale = torch.log(ret[0].abs().double()) + plan.log_norms.take(conf.add_(plan.offsets[:, None])).sum(0)
    if norms:
        log_scale += torch.stack(norms).double().log_().sum(0)
    return torch.empty(rows, n, dtype=torch.int64, device=device).copy_(out.T), 2.0 * log_scale


def conditional_sample(tree: Tree, tensors: Tensors, x: torch.Tensor, known: torch.Tensor,
                       generator: torch.Generator | None = None, chunk: int = 4096):
    """Sample the unknown sites of each row exactly from p(x_unknown | x_known).

    ``tensors`` canonical at the root; x (N, n) int64 (values at unknown sites ignored), known (N, n)
    bool. Returns the completed x and ln p(x_unknown | x_known) (N,) float64. Rows are processed in
    blocks of ``chunk``, each drawing its uniforms, (rows, 2n − 1) float64, from ``generator`` in turn.

    Algorithm (depth-first, one batched step per node, as :func:`sample` with environments): with
    M = t_u·v (N, d0, d1) and E0, E1 the children's environments, the marginal of child 0's unknown
    leaves is the mixture Σ_k (q_k·S0)² with q_k the columns of M L, L Lᵀ = E1 (L = I when nothing below
    child 1 is known, by the isometry of canonical form), of weights q_kᵀ E0 q_k: draw k, sample child 0's
    subtree from the pure vector q_k, then child 1's from r = a0ᵀ M, a0 the amplitude vector of the
    drawn child-0 configuration. Every draw is exact; costs O(N D³) per node without known sites and
    O(N D⁴) (environments, batched eigh) where known and unknown sites mix.
    """
    parts = [_sample_block(tree, tensors, x[start:start + rows], known[start:start + rows], u)
             for start, rows, u in _row_blocks(tree, x.shape[0], chunk, generator, tensors[0].device)]
    if not parts:
        return x.clone(), torch.zeros(0, dtype=torch.float64, device=x.device)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _sample_block(tree: Tree, tensors: Tensors, x, known, u):
    """:func:`conditional_sample` on one block of rows with its uniforms u (rows, 2n − 1)."""
    n = tree.n_sites
    dtype, device = tensors[0].dtype, tensors[0].device
    tiny = _tiny(dtype)
    n_rows = u.shape[0]
    envs, scales = environments(tree, tensors, x, known)
    out = x.clone()
    factors: dict[int, torch.Tensor] = {}  # L with L Lᵀ = E for mixed environments, computed lazily

    def factor(c):
        if c not in factors:
            w, vec = torch.linalg.eigh(envs[c][1])
            factors[c] = vec * torch.sqrt(w.clamp_min(0))[:, None, :]
        return factors[c]

    def leaf(s, q):
        p1 = (q[:, 1] ** 2 / (q * q).sum(1).clamp_min(tiny)).double()
        bit = torch.where(known[:, s], x[:, s], (u[:, s] < p1).long())
        out[:, s] = bit
        return torch.nn.functional.one_hot(bit, 2).to(dtype)

    def descend(c, vec):
        """Sample below child c given its parent-leg vector (rows, d_c): a leaf is drawn at once (its
        one-hot vector returned), an internal node is pushed onto the stack (None returned)."""
        vec = vec / torch.linalg.vector_norm(vec, dim=1, keepdim=True).clamp_min(tiny)
        if c < n:
            return leaf(c, vec)
        stack.append([c, 0, vec, None, None])
        return None

    log_scale = torch.zeros(n_rows, dtype=dtype, device=device)
    # explicit stack of frames [node, stage, v, M, a0]; results are passed back through `ret`
    stack = [[tree.root, 0, torch.ones(n_rows, 1, dtype=dtype, device=device), None, None]]
    ret = None
    while stack:
        frame = stack[-1]
        v_node, stage = frame[0], frame[1]
        t = tensors[v_node - n]
        d0, d1, dp = t.shape
        c0, c1 = int(tree.children[v_node, 0]), int(tree.children[v_node, 1])
        if stage == 0:
            m = (frame[2] @ t.reshape(d0 * d1, dp).T).view(n_rows, d0, d1)
            frame[3] = m
            k0, e0 = envs[c0]
            frame[1] = 1
            if k0 == "pure":
                ret = e0  # child 0 fully known: its (normalised) vector is fixed
                log_scale = log_scale + scales[c0] / 2
                continue
            k1, e1 = envs[c1]
            if k1 == "id":
                q = m
            elif k1 == "pure":
                q = m @ e1[:, :, None]
            else:
                q = m @ factor(c1)
            if k0 == "id":
                weights = (q * q).sum(1)
            else:
                weights = torch.einsum("nak,nab,nbk->nk", q, e0, q).clamp_min(0)
            k = _categorical_columns(weights.T, u[:, v_node])
            ret = descend(c0, q.gather(2, k.view(-1, 1, 1).expand(-1, d0, 1)).squeeze(2))
            continue
        if stage == 1:
            a0 = ret
            frame[4] = a0
            frame[1] = 2
            k1, e1 = envs[c1]
            if k1 == "pure":
                ret = e1
                log_scale = log_scale + scales[c1] / 2
                continue
            ret = descend(c1, torch.einsum("na,nab->nb", a0, frame[3]))
            continue
        # stage 2: amplitude vector of the drawn subtree configuration
        a0, a1 = frame[4], ret
        w = (a0 @ t.reshape(d0, d1 * dp)).view(n_rows, d1, dp)
        a = torch.einsum("nb,nbp->np", a1, w)
        norm = torch.linalg.vector_norm(a, dim=1)
        log_scale = log_scale + torch.log(norm)
        ret = a / norm.clamp_min(tiny)[:, None]
        stack.pop()
    # ret: the normalised root amplitude (±1); Ψ(x) = ret · exp(log_scale)
    logp = 2.0 * (log_scale.double() + torch.log(ret[:, 0].abs().double()))
    kind, val = envs[tree.root]
    if kind == "mixed":
        logp = logp - (scales[tree.root] + torch.log(val[:, 0, 0])).double()
    elif kind == "pure":
        logp = torch.zeros_like(logp)
    return out, logp


# --------------------------------------------------------------------------------------------------
# Entanglement
# --------------------------------------------------------------------------------------------------
def _edge_matrix(t: torch.Tensor, leg: int) -> torch.Tensor:
    """The centre tensor as a matrix (d_leg, rest)."""
    perm = [leg] + [a for a in range(3) if a != leg]
    tp = t.permute(*perm)
    return tp.reshape(tp.shape[0], -1)


def _spectrum(mat: torch.Tensor) -> torch.Tensor:
    s = torch.linalg.svdvals(mat)
    return s / torch.linalg.vector_norm(s)


def schmidt_values(tree: Tree, tensors: Tensors, child: int) -> torch.Tensor:
    """Schmidt values (descending, Σλ² = 1) across the edge above node ``child``; O(n D⁴)."""
    n = tree.n_sites
    p = int(tree.parent[child])
    chain, _ = canonicalize(tree, tensors, p)
    return _spectrum(_edge_matrix(chain[p - n], int(tree.slot[child])))


def edge_spectra(tree: Tree, tensors: Tensors) -> list[torch.Tensor]:
    """Schmidt values of every edge, in the order of ``tree.edges``, in one depth-first pass.

    ``tensors`` canonical at the root. The centre walks down and up every internal edge (QR moves);
    at each centre the spectra of its child edges are read off by SVD. O(n D⁴).
    """
    n = tree.n_sites
    work = list(tensors)
    spectra: dict[int, torch.Tensor] = {}
    actions = [("visit", tree.root)]
    while actions:
        kind, v = actions.pop()
        if kind == "visit":
            for s in (0, 1):
                c = int(tree.children[v, s])
                spectra[c] = _spectrum(_edge_matrix(work[v - n], s))
            for s in (1, 0):
                c = int(tree.children[v, s])
                if c >= n:
                    actions += [("move", (c, v)), ("visit", c), ("move", (v, c))]
        else:
            move_center(tree, work, v[0], v[1])
    return [spectra[c] for c, _ in tree.edges]


# --------------------------------------------------------------------------------------------------
# Rényi-2 of an arbitrary site set: swap contraction of four copies
# --------------------------------------------------------------------------------------------------
_LETTERS = {"child0": "abcd", "child1": "efgh"}


def _swap_subscripts(kind0: str, kind1: str) -> tuple[str, list[int]]:
    """einsum subscripts for one node of the four-copy contraction.

    Copies: ket₁, bra₁, ket₂, bra₂. A child environment is a 4-leg tensor (kind "F"), or a pairing of
    the copies: "Y" (ket₁–bra₁, ket₂–bra₂: subtree outside X) or "X" (ket₁–bra₂, ket₂–bra₁: inside X).
    Returns the subscripts (operands: the F environments that exist, then t four times) and which
    children supply an F operand.
    """
    legs = []
    operands, which = [], []
    for idx, kind in enumerate((kind0, kind1)):
        k1, b1, k2, b2 = _LETTERS["child0" if idx == 0 else "child1"]
        if kind == "Y":
            b1, b2 = k1, k2
        elif kind == "X":
            b2, b1 = k1, k2
        else:
            operands.append(k1 + b1 + k2 + b2)
            which.append(idx)
        legs.append((k1, b1, k2, b2))
    (a, b, c, d), (e, f, g, h) = legs
    tensors = [a + e + "p", b + f + "q", c + g + "r", d + h + "s"]
    return ",".join(operands + tensors) + "->pqrs", which


def renyi2_swap(tree: Tree, tensors: Tensors, in_x: list[bool], max_flops: float = 2e10,
                max_size: float = 5e7) -> float:
    """S₂ = −ln Tr ρ_X² for the sites flagged in ``in_x`` (exact, nats); ``tensors`` canonical at the root.

    Subtrees entirely in X or entirely outside contract to pairings of identities (canonical form);
    other nodes carry a (d, d, d, d) environment and cost up to O(D⁸) with two such children.
    Raises ``ValueError`` when the estimated cost exceeds ``max_flops`` or an intermediate exceeds
    ``max_size`` elements (use the Monte Carlo swap estimator then).
    """
    import opt_einsum

    n = tree.n_sites
    if all(in_x) or not any(in_x):
        return 0.0
    kinds: list = [("X" if in_x[s] else "Y") for s in range(n)] + [None] * (n - 1)
    plan = []
    total = 0.0
    dims = node_dims(tree, tensors)
    for v in tree.internal:
        c0, c1 = int(tree.children[v, 0]), int(tree.children[v, 1])
        k0, k1 = kinds[c0], kinds[c1]
        if k0 == k1 and k0 in ("X", "Y"):
            kinds[v] = k0
            continue
        kinds[v] = "F"
        subs, which = _swap_subscripts(k0, k1)
        shapes = [(dims[[c0, c1][i]],) * 4 for i in which] + [tuple(tensors[v - n].shape)] * 4
        path, info = opt_einsum.contract_path(subs, *shapes, shapes=True, optimize="optimal")
        total += float(info.opt_cost)
        if float(info.largest_intermediate) > max_size or total > max_flops:
            raise ValueError(f"exact renyi2 is too expensive for this set and these bond dimensions "
                             f"(≈{max(total, float(info.opt_cost)):.2g} flops, largest intermediate "
                             f"{float(info.largest_intermediate):.2g} elements); use method='mc'")
        plan.append((v, subs, which, path))
    envs: dict[int, torch.Tensor] = {}
    log_scale = 0.0
    for v, subs, which, path in plan:
        c = [int(tree.children[v, 0]), int(tree.children[v, 1])]
        t = tensors[v - n]
        ops = [envs.pop(c[i]) for i in which] + [t, t, t, t]
        env = opt_einsum.contract(subs, *ops, optimize=path, backend="torch")
        scale = torch.linalg.vector_norm(env)
        log_scale += math.log(scale.item())
        envs[v] = env / scale
    value = float(envs[tree.root].reshape(-1)[0]) if tree.root in envs else 1.0
    return -(log_scale + math.log(value))
