"""Information-theoretic comparison of Born machines and Boltzmann machines.

* :mod:`comparison.bipartitions` – splits of the image pixels into X and Y (up/down, left/right,
  checkerboards, centre/margin, random) and the standard set of the paper's Fig. 3.
* :mod:`comparison.information` – mutual information (plug-in, KSG) and Rényi-2 entropy of data
  across a bipartition; thin wrappers for the models' own ``renyi2`` / ``mutual_information``.
* :mod:`comparison.capacity` – how much MI / entanglement an RBM connectivity or a tensor network
  (min cut over bonds) can carry across a bipartition.
* :mod:`comparison.experiments` – the paper's Fig. 3 (:func:`~comparison.experiments.mi_profile`), Fig. 4
  (:func:`~comparison.experiments.rbm_architectures`) and Born vs Boltzmann at matched #params.
* :mod:`comparison.report` – all three in one command: ``comparison report --out report/``.
"""
from . import bipartitions, capacity, experiments, information, report

__all__ = ["bipartitions", "capacity", "experiments", "information", "report"]
