"""A Monte Carlo estimate with its standard error."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """``value ± stderr`` (one standard error). Exact results carry ``stderr = 0.0``."""

    value: float
    stderr: float = 0.0

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        return f"{self.value:.6g} ± {self.stderr:.2g}"
