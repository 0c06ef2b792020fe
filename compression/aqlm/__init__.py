"""presso.compression.aqlm: additive quantization (AQLM, arXiv 2401.06118) of Llama-family models.

config -> layer (init, beam search, least-squares updates on the output error) -> pipeline (layer by
layer over a model, resumable via store) -> checkpoint (AQLM's Hugging Face layout) + loader (read
back for `presso eval`) + run/cli (`presso aqlm`). Kernels live in presso.kernels.aqlm.
"""
