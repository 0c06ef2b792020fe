"""Paged KV cache: block manager (logical, pure Python), codecs and cache (physical pages)."""
