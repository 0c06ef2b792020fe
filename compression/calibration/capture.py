"""Capture what a causal LM's decoder layers receive, batch by batch (layers found by layers.py).

windows (N, L) int64 -> model forward -> per batch of B windows: decoder layer 0's hidden states (B, L, H)
fp32 and the keyword arguments the model passes each layer (rotary position embeddings, attention masks).
Most families pass every layer the same ones: then the forward stops at layer 0 after the first batch.
Gemma 2/3 give sliding-window layers their own mask and Gemma 3 its local layers their own RoPE base; then
every layer's arguments are kept (references, not copies) and the replay of layer i uses layer i's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from presso.compression.calibration.layers import decoder_layers


@dataclass(frozen=True, slots=True)
class LayerBatch:
    hidden: torch.Tensor  # (B, L, H) input of the current decoder layer
    kwargs: dict  # keyword arguments of the current decoder layer's call
    layer: int = 0  # index of the current decoder layer
    per_layer: tuple[dict, ...] = field(default=())  # every layer's kwargs where they differ, else ()

    def advance(self, hidden: torch.Tensor) -> LayerBatch:
        """The batch for the next layer: its input `hidden` (this layer's output) and that layer's kwargs."""
        nxt = self.layer + 1
        kwargs = self.per_layer[nxt] if self.per_layer else self.kwargs
        return LayerBatch(hidden, kwargs, nxt, self.per_layer)


class _Stop(Exception):
    """Raised by the capture hook: nothing past the needed decoder layer has to run."""


def layer_output(out) -> torch.Tensor:
    """Decoder layers return a tensor (transformers >= 5) or a tuple whose first item is one."""
    return out[0] if isinstance(out, tuple) else out


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a is b or (a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a is b or a == b


@torch.no_grad()
def capture_layer_inputs(model: torch.nn.Module, windows: torch.Tensor, batch_size: int) -> list[LayerBatch]:
    _, layers = decoder_layers(model)
    batches: list[LayerBatch] = []
    calls: list[dict] = []  # this batch's kwargs per layer
    state = {"hidden": None, "stop_at": len(layers) - 1}  # after batch 1: 0 when all layers share kwargs

    def hook(i: int):
        def fn(module, args, kwargs):
            hidden = args[0] if args else kwargs.pop("hidden_states")
            kwargs = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value", "cache")}
            if i == 0:
                state["hidden"] = hidden.detach()
            calls.append(dict(kwargs, use_cache=False))
            if i == state["stop_at"]:
                raise _Stop
        return fn

    handles = [layer.register_forward_pre_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        for start in range(0, windows.shape[0], batch_size):
            calls.clear()
            try:
                model(input_ids=windows[start : start + batch_size], use_cache=False)
            except _Stop:
                pass
            if not batches and all(_same(c, calls[0]) for c in calls[1:]):
                state["stop_at"] = 0  # every layer gets layer 0's arguments: later batches stop there
            per_layer = tuple(calls) if state["stop_at"] else ()
            batches.append(LayerBatch(state["hidden"], calls[0], 0, per_layer))
    finally:
        for handle in handles:
            handle.remove()
    return batches
