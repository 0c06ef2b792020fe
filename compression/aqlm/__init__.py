"""presso.compression.aqlm: additive quantization (AQLM, arXiv 2401.06118), the `aqlm` recipe method.

config (the step's params) -> method (registered in presso.compression.methods; runs inside the shared
sequential calibration) -> layer (init, beam search, least-squares updates on the output error) ->
checkpoint (AQLM's Hugging Face layout, written by `presso compress`) + loader (read back for `presso
eval`). Kernels live in presso.kernels.aqlm.
"""
