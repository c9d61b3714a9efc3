"""Reference restricted Boltzmann machine (RBM)."""
