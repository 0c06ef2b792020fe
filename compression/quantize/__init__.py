"""presso.compression.quantize: `presso compress` end to end.

model dir + recipe -> plan (recipes) -> sequential calibration + methods (calibration, methods) ->
compressed-tensors pack-quantized checkpoint via the compressed-tensors library (export.py) +
presso.json + report.json (report.py), written atomically (pipeline.py).
"""

from presso.compression.quantize.pipeline import CompressOptions, compress

__all__ = ["CompressOptions", "compress"]
