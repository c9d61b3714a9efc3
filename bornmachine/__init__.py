"""Tensor-network Born machines: p(v) = |Ψ(v)|² / Z with Ψ a matrix product state or a tree tensor network.

Logs are natural (nats) unless a ``base=`` argument says otherwise.
"""
from . import datasets, orderings
from .base import BornMachine
from .estimate import Estimate
from .io import load
from .mps import MPS
from .mutual_information import pairwise_mutual_information
from .training import GradientTrainer, SweepTrainer, ZeroProbabilityWarning
from .tree import Tree
from .ttn import TTN

__all__ = ["MPS", "TTN", "Tree", "BornMachine", "SweepTrainer", "GradientTrainer", "ZeroProbabilityWarning",
           "Estimate", "load", "datasets", "orderings", "pairwise_mutual_information"]
__version__ = "0.1.0"
