"""Information-theoretic comparison of Born machines and Boltzmann machines."""
