"""presso.compression.models: embedded models that ship inside PyPI packages, and `presso pull`."""
