"""Custom calls that XLA runs where its own kernels are slow (oneDNN's CPU convolutions)."""
