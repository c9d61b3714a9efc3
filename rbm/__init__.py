"""Reference restricted Boltzmann machine (RBM)."""
from . import masks
from .io import load
from .model import RBM
from .partition import ais_log_z, estimate_log_z, exact_log_z, reverse_ais_log_z
from .training import CDTrainer

__all__ = ["RBM", "CDTrainer", "load", "masks", "exact_log_z", "ais_log_z", "reverse_ais_log_z", "estimate_log_z"]
