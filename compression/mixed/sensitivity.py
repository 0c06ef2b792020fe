"""Per-Linear, per-bit-width sensitivity: predicted increase of the mean next-token NLL (nats/token).

Why this proxy. Measuring the loss with each Linear quantized alone costs one forward per (Linear, bit
width): 210 Linears x 4 widths x ~5 s on SmolLM2 with one thread is over an hour. Instead one
forward+backward pass over the calibration windows measures, for every Linear y = W x, two factors:
  A = (1/N) sum_t x_t x_t^T  (in, in)   the input second moment (GPTQ's Hessian H = 2A), and
  g2 = (1/N) sum_t g_t^2     (out,)     g_t = dL/dy_t of the summed token NLL L (empirical Fisher).
With the K-FAC factorisation of the Fisher (inputs independent of output gradients) and its diagonal
in the output dimension, quantizing W to W_hat = W - D changes the loss by, to second order,
  dNLL/token = 1/2 sum_o g2_o (D A D^T)_oo,
i.e. the layer's Hessian-weighted output error (what GPTQ minimises) scaled per output channel by how
much the loss cares about that channel, measured, not assumed. D is the error of the quantizer that
will really run (GPTQ by default, on the dense inputs), so its error compensation is accounted for.
Cost on SmolLM2 (1 thread): ~5 s per 512-token window forward+backward, plus ~0.05-0.4 s per
(Linear, candidate) quantization: 2-4 minutes with 16 windows and 4 candidates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from presso.compression.calibration.hessian import HessianCollector
from presso.compression.calibration.sequential import single_thread
from presso.compression.methods.grid import GridSpec
from presso.compression.methods.registry import LayerStats, get_method


@dataclass(frozen=True, slots=True)
class LayerSensitivity:
    name: str
    out_features: int
    in_features: int
    loss: dict[GridSpec, float]  # predicted dNLL per token when only this Linear is quantized to that grid


@dataclass(frozen=True, slots=True)
class SensitivityResult:
    layers: list[LayerSensitivity]
    tokens: int
    seconds: float


def _output_grad_hooks(linears: dict[str, torch.nn.Linear], sums: dict[str, torch.Tensor]) -> list:
    def hook(name):
        def fn(module, args, output):
            def grad_fn(grad):  # grad (B, T, out)
                g2 = grad.detach().float().pow(2).reshape(-1, grad.shape[-1]).sum(0)  # (out,)
                sums[name] = sums[name] + g2 if name in sums else g2

            output.register_hook(grad_fn)

        return fn

    return [m.register_forward_hook(hook(n)) for n, m in linears.items()]


def measure_fisher(model: torch.nn.Module, names: list[str], windows: torch.Tensor, batch_size: int = 2,
                   progress: bool = True) -> tuple[dict, dict, int]:
    """-> (H (in, in) per Linear, g2 (out,) per Linear, tokens). Weights get no gradients."""
    modules = dict(model.named_modules())
    linears = {n: modules[n] for n in names}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    embed = model.get_input_embeddings()
    embed.weight.requires_grad_(True)  # the cheapest leaf that makes every activation require grad
    sums: dict[str, torch.Tensor] = {}
    collector = HessianCollector(linears)
    handles = _output_grad_hooks(linears, sums)
    tokens = 0
    try:
        for start in tqdm(range(0, windows.shape[0], batch_size), desc="sensitivity (fwd+bwd)", unit="batch",
                          disable=not progress):
            batch = windows[start : start + batch_size]  # (B, L)
            logits = model(input_ids=batch, use_cache=False).logits  # (B, L, V)
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), reduction="sum")
            nll.backward()
            tokens += batch.numel()
            embed.weight.grad = None
    finally:
        collector.remove()
        for h in handles:
            h.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
    hessians = {n: collector.hessian(n) for n in names}
    return hessians, {n: sums[n] / tokens for n in names}, tokens


@torch.no_grad()
def layer_losses(linear: torch.nn.Linear, hessian: torch.Tensor, g2: torch.Tensor, tokens: int,
                 specs: list[GridSpec], method: str, params) -> dict[GridSpec, float]:
    """Predicted dNLL/token of each candidate grid for one Linear (see the module docstring)."""
    quantizer = get_method(method)
    w = linear.weight.detach().float()  # (out, in)
    a = hessian / 2.0  # (in, in) input second moment
    out = {}
    for spec in specs:
        with single_thread():
            qw = quantizer.quantize(linear, LayerStats(hessian=hessian, tokens=tokens), spec, params)
        d = w - qw.dequantize()  # (out, in)
        out[spec] = 0.5 * float((g2 * ((d @ a) * d).sum(1)).sum())
    return out


def measure(model: torch.nn.Module, names: list[str], specs: dict[str, list[GridSpec]], windows: torch.Tensor,
            method: str, params, progress: bool = True) -> SensitivityResult:
    """specs: Linear name -> the candidate grids valid for it (group size divides in_features)."""
    start = time.perf_counter()
    hessians, g2, tokens = measure_fisher(model, names, windows, progress=progress)
    modules = dict(model.named_modules())
    layers = []
    for name in tqdm(names, desc="sensitivity (quantize)", unit="linear", disable=not progress):
        linear = modules[name]
        losses = layer_losses(linear, hessians.pop(name), g2[name], tokens, specs[name], method, params)
        layers.append(LayerSensitivity(name, linear.out_features, linear.in_features, losses))
    return SensitivityResult(layers, tokens, time.perf_counter() - start)
