"""Sparse weights (bitmask layouts): decompression to dense, done once at load."""

from presso.kernels.sparse import reference  # noqa: F401  (registers the backend)
