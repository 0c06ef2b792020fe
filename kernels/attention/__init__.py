"""Paged attention over plain (bf16/fp16/fp32) KV pages: reference spec and fast CPU path."""

from presso.kernels.attention import cpu, reference  # noqa: F401  (registers the backends)
