"""Capture what a causal LM's first decoder layer receives, batch by batch (layers found by layers.py).

windows (N, L) int64 -> model forward stopped at decoder layer 0 by a pre-hook -> per batch of B windows:
hidden states (B, L, H) fp32 and the keyword arguments the model passes every layer (rotary
position embeddings, masks), replayed unchanged for every later layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from presso.compression.calibration.layers import decoder_layers


@dataclass(frozen=True, slots=True)
class LayerBatch:
    hidden: torch.Tensor  # (B, L, H) input of the current decoder layer
    kwargs: dict  # keyword arguments of the decoder-layer call (shared by all layers)


class _Stop(Exception):
    """Raised by the capture hook: nothing past decoder layer 0 needs to run."""


def layer_output(out) -> torch.Tensor:
    """Decoder layers return a tensor (transformers >= 5) or a tuple whose first item is one."""
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def capture_layer_inputs(model: torch.nn.Module, windows: torch.Tensor, batch_size: int) -> list[LayerBatch]:
    _, layers = decoder_layers(model)
    batches: list[LayerBatch] = []

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        kwargs = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value")}
        batches.append(LayerBatch(hidden=hidden.detach(), kwargs=dict(kwargs, use_cache=False)))
        raise _Stop

    handle = layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for start in range(0, windows.shape[0], batch_size):
            try:
                model(input_ids=windows[start : start + batch_size], use_cache=False)
            except _Stop:
                pass
    finally:
        handle.remove()
    return batches
