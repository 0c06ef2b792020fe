"""presso.compression.calibration: sequential, one-decoder-layer-at-a-time calibration.

calibration text -> (N, L) token windows (samples.py) -> decoder-layer-0 inputs (capture.py) -> per layer:
method prepare (AWQ), input Hessians (hessian.py), per-Linear quantization, then the *quantized* layer's
outputs become the next layer's inputs (sequential.py).
"""

from presso.compression.calibration.samples import calibration_windows
from presso.compression.calibration.sequential import QuantizedLayer, quantize_model

__all__ = ["QuantizedLayer", "calibration_windows", "quantize_model"]
