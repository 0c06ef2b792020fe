"""presso's native CPU kernels: C sources next to this module, built on first use (build.py)."""
