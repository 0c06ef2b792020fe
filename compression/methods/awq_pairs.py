"""Which op feeds which Linears in a decoder layer, for AWQ's scale folding, found for any family.

One replay of the layer records, through hooks, the tensor every Linear receives and the tensor every norm
returns: a Linear whose input *is* a norm's output is balanced by that norm (Llama's input_layernorm ->
q/k/v, Gemma's pre_feedforward_layernorm -> gate/up, Phi-3's norms -> fused qkv_proj / gate_up_proj; Gemma's
post-attention sandwich norm feeds the residual, not a Linear, so it is never folded into). Linear -> Linear
pairs (v -> o, up -> down, and the v / up rows of Phi-3's fused qkv_proj / gate_up_proj) come from a table of
names, because attention and the gated activation sit between them. Norm gains are `offset + weight`, with
the offset probed (0 for Llama's RMSNorm, 1 for Gemma's). The replay also keeps the first batch's input and
output, so every fold is checked to leave the layer's function unchanged before rounding (else undone).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# (smooth Linear, balanced Linear, smooth's out_features / balanced's in_features): the smooth op's last
# balanced.in_features output rows feed the balanced Linear (all of them when the ratio is 1).
LINEAR_PAIRS = [
    ("self_attn.v_proj", "self_attn.o_proj", 1),
    ("mlp.up_proj", "mlp.down_proj", 1),
    ("self_attn.qkv_proj", "self_attn.o_proj", 3),  # fused [q | k | v], only without GQA
    ("mlp.gate_up_proj", "mlp.down_proj", 2),  # fused [gate | up]
]


@dataclass(frozen=True, slots=True)
class SmoothPair:
    op: str  # module name in the layer: a norm or a Linear
    balanced: tuple[str, ...]  # Linears fed (a row range of) op's output; the first one's input stats are used
    rows: tuple[int, int] | None  # a Linear op: its output rows that feed `balanced`; None for a norm
    offset: float  # a norm's gain is offset + weight (Gemma: 1)


def norm_offset(norm: torch.nn.Module, width: int) -> float | None:
    """0 or 1: whether the norm scales by weight or by 1 + weight; None if it is neither (then not folded)."""
    weight = norm.weight
    saved = weight.detach().clone()
    x = torch.randn(4, width, generator=torch.Generator().manual_seed(0)).to(weight.dtype)
    try:
        with torch.no_grad():
            weight.zero_()
            zero = norm(x).float()
            weight.fill_(1.0)
            one = norm(x).float()
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    step = one - zero  # the normalised input itself for both forms
    if float(step.abs().max()) == 0.0:
        return None
    for offset in (0.0, 1.0):
        if torch.allclose(zero, offset * step, rtol=1e-3, atol=1e-5):
            return offset
    return None


class LayerFeeds:
    """Hooks on one decoder layer during a replay: who feeds each Linear, mean |x| per Linear input, and the
    first batch's call (to re-run) and output (to compare)."""

    def __init__(self, layer: torch.nn.Module, linears: dict[str, torch.nn.Linear]):
        self.layer, self.linears = layer, linears
        self.fed_by: dict[str, set[str | None]] = {}  # every Linear in the layer -> norms whose output it got
        self.abs_sums: dict[str, torch.Tensor] = {}  # targeted Linear -> sum |x| (in,) fp32
        self.first_call: tuple[tuple, dict] | None = None
        self.first_output: torch.Tensor | None = None
        self._outputs: dict[int, tuple[torch.Tensor, str]] = {}  # id -> (norm output, norm name), this call
        modules = dict(layer.named_modules())
        self.norms = {n: m for n, m in modules.items() if not isinstance(m, torch.nn.Linear) and n
                      and getattr(m, "weight", None) is not None and m.weight.ndim == 1}
        hooks = [layer.register_forward_pre_hook(self._start, with_kwargs=True),
                 layer.register_forward_hook(self._end)]
        hooks += [m.register_forward_hook(self._norm_hook(n)) for n, m in self.norms.items()]
        hooks += [m.register_forward_pre_hook(self._linear_hook(n)) for n, m in modules.items()
                  if isinstance(m, torch.nn.Linear)]
        self._handles = hooks

    def _start(self, module, args, kwargs):
        self._outputs = {}
        if self.first_call is None:
            self.first_call = (args, dict(kwargs))

    def _end(self, module, args, output):
        self._outputs = {}
        if self.first_output is None:
            self.first_output = (output[0] if isinstance(output, tuple) else output).detach().clone()

    def _norm_hook(self, name: str):
        def fn(module, args, output):
            if isinstance(output, torch.Tensor):
                self._outputs[id(output)] = (output, name)  # holding the tensor keeps its id unique
        return fn

    def _linear_hook(self, name: str):
        def fn(module, args):
            x = args[0]
            source = self._outputs.get(id(x))
            self.fed_by.setdefault(name, set()).add(source[1] if source is not None and source[0] is x else None)
            if name in self.linears:
                flat = x.detach().reshape(-1, x.shape[-1]).float()  # (tokens, in)
                self.abs_sums[name] = self.abs_sums.get(name, 0) + flat.abs().sum(0)
        return fn

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    @torch.no_grad()
    def preserved(self, tol: float = 1e-3) -> bool:
        """Re-run the first batch: is the layer's output unchanged (relative to its largest value)?"""
        args, kwargs = self.first_call
        out = self.layer(*args, **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        ref = self.first_output
        return float((out.float() - ref.float()).abs().max()) <= tol * max(float(ref.abs().max()), 1e-12)

    def pairs(self) -> list[SmoothPair]:
        """Every foldable (op -> balanced Linears) pair whose balanced Linears are all targeted."""
        out = []
        for norm, module in self.norms.items():
            fed = sorted(n for n, sources in self.fed_by.items() if norm in sources)
            if not fed or any(self.fed_by[n] != {norm} or n not in self.linears for n in fed):
                continue
            offset = norm_offset(module, module.weight.shape[0])
            if offset is not None and module.weight.shape[0] == self.linears[fed[0]].in_features:
                out.append(SmoothPair(norm, tuple(fed), None, offset))
        modules = dict(self.layer.named_modules())
        for op, balanced, ratio in LINEAR_PAIRS:
            smooth, target = modules.get(op), self.linears.get(balanced)
            if isinstance(smooth, torch.nn.Linear) and target is not None \
                    and smooth.out_features == ratio * target.in_features:
                out.append(SmoothPair(op, (balanced,), (smooth.out_features - target.in_features,
                                                        smooth.out_features), 0.0))
        return out


def fold(pair: SmoothPair, modules: dict[str, torch.nn.Module], s: torch.Tensor) -> None:
    """op's output channels / s, balanced input columns * s; s (in,) fp32 (s = 1 / s undoes it)."""
    smooth = modules[pair.op]
    with torch.no_grad():
        if pair.rows is not None:
            lo, hi = pair.rows
            smooth.weight[lo:hi].div_(s[:, None].to(smooth.weight.dtype))  # (rows, in)
            if smooth.bias is not None:
                smooth.bias[lo:hi].div_(s.to(smooth.bias.dtype))
        else:
            gain = (pair.offset + smooth.weight.float()) / s  # (in,)
            smooth.weight.copy_((gain - pair.offset).to(smooth.weight.dtype))
            if getattr(smooth, "bias", None) is not None:
                smooth.bias.div_(s.to(smooth.bias.dtype))
        for name in pair.balanced:
            linear = modules[name]
            linear.weight.mul_(s[None, :].to(linear.weight.dtype))
