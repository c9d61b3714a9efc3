"""Verdicts that say when the numbers cannot decide: "holds", "does not hold" or "not decided".

A result row (one trained model) carries ``test_nll``, ``converged`` and, for an RBM, the AIS
uncertainty of its NLL: ``test_nll_stderr`` (forward AIS) and ``ais_gap`` (|forward − reverse AIS|).
Model A is *decided* better than B when A's test NLL is lower by more than the sum of their
uncertainties (``max(stderr, gap / 2)`` each; 0 for exact NLLs) and B, the model that would have to
improve to overturn it, converged: more training only lowers a model's best-validation NLL, so an
unconverged A would only widen its lead, while an unconverged B might still close the gap.
"""
from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["HOLDS", "FAILS", "UNDECIDED", "uncertainty", "lower_by", "better", "best_of", "combine"]

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "not decided"


def uncertainty(row: dict) -> float:
    """Half-width of what the row's test NLL may be off by (nats): AIS standard error or half the
    forward/reverse gap, whichever is larger; 0 for an exact NLL."""
    return max(float(row.get("test_nll_stderr") or 0.0), 0.5 * float(row.get("ais_gap") or 0.0))


def lower_by(a: dict, b: dict, gap: float) -> str:
    """Verdict on "a's test NLL ≤ b's − ``gap``" (``gap`` < 0: a within −gap nats of b): holds when true beyond
    the two uncertainties and b converged (b cannot come down to meet a), does not hold when false beyond
    them and a converged (a cannot come down), not decided otherwise."""
    margin = uncertainty(a) + uncertainty(b)
    excess = a["test_nll"] - (b["test_nll"] - gap)
    if excess < -margin and b.get("converged"):
        return HOLDS
    if excess > margin and a.get("converged"):
        return FAILS
    return UNDECIDED


def better(a: dict, b: dict) -> str:
    """Verdict on "a has a lower test NLL than b"."""
    return lower_by(a, b, 0.0)


def best_of(winner: dict, others: Sequence[dict]) -> str:
    """Verdict on "``winner`` is better than every one of ``others``"."""
    return combine(better(winner, other) for other in others)


def combine(verdicts: Iterable[str]) -> str:
    """All hold → holds; any fails → does not hold; else not decided (also for none)."""
    verdicts = list(verdicts)
    if FAILS in verdicts:
        return FAILS
    return HOLDS if verdicts and all(v == HOLDS for v in verdicts) else UNDECIDED
