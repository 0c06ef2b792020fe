"""Layer-by-layer AQLM over a Llama-family model (the GPTQ/AQLM sequential protocol).

calibration ids (S, L) -> embeddings -> inputs of decoder layer 0 (captured with a pre-hook, together
with the layer kwargs: rotary position embeddings, mask) -> for each decoder layer: accumulate
H = X^T X for every nn.Linear input (q/k/v and gate/up share one), quantize each linear
(compression/aqlm/layer.py), swap in AQLMLinear modules, then run the *quantized* layer to produce the
next layer's inputs, so later layers calibrate on what they will really see. Finished layers are kept
in a LayerStore and skipped on a rerun (resume).
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from presso.compression.aqlm.config import AQLMConfig
from presso.compression.aqlm.layer import quantize_layer
from presso.compression.aqlm.module import AQLMLinear
from presso.compression.aqlm.store import LayerStore
from presso.compression.calibration.capture import capture_layer_inputs, layer_output
from presso.compression.checkpoint.errors import PressoInputError


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise PressoInputError(f"AQLM supports Llama-family models (model.model.layers); got {type(model).__name__}")
    return layers


def _run(layer: torch.nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
    return layer_output(layer(hidden, **kwargs))


def capture_inputs(model: torch.nn.Module, ids: torch.Tensor, batch: int) -> tuple[list[torch.Tensor], dict]:
    """-> inputs of decoder layer 0 as (batch, L, D) chunks, and the kwargs the model passes to it
    (the shared calibration capture; every chunk gets the last chunk's kwargs, as before)."""
    batches = capture_layer_inputs(model, ids, batch)
    return [b.hidden for b in batches], dict(batches[-1].kwargs)


@torch.no_grad()
def collect_hessians(layer: torch.nn.Module, hiddens: list[torch.Tensor], kwargs: dict) -> dict[str, torch.Tensor]:
    """{linear name in layer: H (K, K) fp32}; linears fed the same tensor share one H object."""
    linears = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
    hess: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}  # data_ptr of an input seen in this forward -> first linear that saw it

    def make_hook(name: str):
        def hook(module, inputs, _output):
            x = inputs[0]
            first = seen.setdefault(x.data_ptr(), name)
            if first != name:
                hess[name] = hess[first]
                return
            flat = x.reshape(-1, x.shape[-1]).float()  # (tokens, K)
            hess[name] = hess.get(name, torch.zeros(flat.shape[1], flat.shape[1])).addmm_(flat.t(), flat)
        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in linears.items()]
    try:
        for hidden in hiddens:
            seen.clear()
            _run(layer, hidden, kwargs)
    finally:
        for h in handles:
            h.remove()
    return hess


def install(layer: torch.nn.Module, name: str, tensors: dict) -> None:
    old = layer.get_submodule(name)
    new = AQLMLinear.from_tensors(tensors["codes"], tensors["codebooks"], tensors["scales"], old.bias)
    layer.set_submodule(name, new)


@torch.no_grad()
def quantize_model(
    model: torch.nn.Module, ids: torch.Tensor, cfg: AQLMConfig, store: LayerStore,
    batch: int = 8, progress: bool = True, only: frozenset[int] | None = None,
) -> list[dict]:
    """Quantize every nn.Linear inside the decoder layers (or those listed in `only`) in place.

    -> per-linear stats dicts. Layers outside `only` stay dense and just pass their outputs on.
    """
    layers = decoder_layers(model)
    hiddens, kwargs = capture_inputs(model, ids, batch)
    stats: list[dict] = []
    bar = tqdm(range(len(layers)), desc=f"aqlm {cfg.scheme}", unit="layer", disable=not progress)
    for index in bar:
        layer = layers[index]
        if only is not None and index not in only:
            hiddens = [_run(layer, h, kwargs) for h in hiddens]
            continue
        saved = store.load(index)
        if saved is None:
            hess = collect_hessians(layer, hiddens, kwargs)
            results, layer_stats = {}, {}
            for name, module in layer.named_modules():
                if not isinstance(module, torch.nn.Linear):
                    continue
                start = time.perf_counter()
                q = quantize_layer(module.weight, hess[name], cfg, seed=index)
                results[name] = q
                layer_stats[name] = {
                    "name": f"model.layers.{index}.{name}", "shape": list(module.weight.shape),
                    "output_sqnr_db": q.output_sqnr_db, "weight_sqnr_db": q.weight_sqnr_db,
                    "loss_first": q.loss_history[0], "loss_last": q.loss_history[-1],
                    "seconds": time.perf_counter() - start,
                }
                bar.set_postfix_str(f"{name} {q.output_sqnr_db:.1f} dB")
            store.save(index, results, layer_stats)
            saved = store.load(index)
        tensors, layer_stats = saved
        for name, t in tensors.items():
            install(layer, name, t)
        stats.extend(layer_stats.values())
        hiddens = [_run(layer, h, kwargs) for h in hiddens]
    return stats
