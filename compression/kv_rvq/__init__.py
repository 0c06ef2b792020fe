"""presso.compression.kv_rvq: offline calibration of residual-VQ codebooks for the paged KV cache.

calibration text -> K/V vectors per layer (collect.py) -> residual k-means per layer (kmeans.py)
-> presso_kv.safetensors + a per-layer reconstruction SQNR report (calibrate.py).
"""
