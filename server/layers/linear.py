"""Linear methods registry (DESIGN contract 2): codec name -> module class; models call make_linear().

Every method has `__init__` (shapes, spec), `load(source)` (read its shards' tensors from the checkpoint),
`finalize()` (merge shards, prepare the backend's layout) and `forward(x)`. A merged layer (q/k/v or
gate/up) reads several checkpoint prefixes and concatenates them along the output dimension, so the
model runs one matmul where the checkpoint has several. Integer codecs run through the kernel
dispatcher (`wq_linear`: reference / cpu packed int8-int4 / triton).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from presso.kernels import registry as kernels
from presso.kernels.quant import QuantizedWeight
from presso.kernels.quant.reference import unpack_zero_points
from presso.server.layers.quant_config import INT_CODECS, LinearSpec

LINEAR_METHODS: dict[str, type[LinearMethod]] = {}


def register_linear(*names: str):
    def deco(cls):
        for name in names:
            LINEAR_METHODS[name] = cls
        return cls
    return deco


class LinearMethod(nn.Module):
    """Base: `prefixes` are the checkpoint module names whose outputs are concatenated (sizes `out_sizes`)."""

    def __init__(self, prefixes: list[str], in_features: int, out_sizes: list[int], bias: bool, spec: LinearSpec,
                 dtype: torch.dtype, transposed: bool = False):
        super().__init__()
        self.prefixes, self.in_features, self.out_sizes = prefixes, in_features, out_sizes
        self.out_features = sum(out_sizes)
        self.has_bias, self.spec, self.dtype, self.transposed = bias, spec, dtype, transposed
        self.bias = None
        self.num_parameters = self.in_features * self.out_features
        self.weight_bytes = 0  # bytes of this layer's weight tensors in the checkpoint

    def _read(self, source, name: str) -> torch.Tensor:
        t = source.get(name)
        self.weight_bytes += t.numel() * t.element_size()
        return t

    def _load_bias(self, source) -> None:
        if self.has_bias:
            parts = [self._read(source, f"{p}.bias") for p in self.prefixes]
            self.bias = nn.Parameter(torch.cat(parts).to(self.dtype), requires_grad=False)

    def load(self, source) -> None:
        raise NotImplementedError

    def finalize(self) -> None:
        pass


@register_linear("dense")
class DenseLinear(LinearMethod):
    def load(self, source) -> None:
        parts = [self._read(source, f"{p}.weight") for p in self.prefixes]
        if self.transposed:  # GPT-2 Conv1D stores (in, out)
            parts = [t.t() for t in parts]
        self.weight = nn.Parameter(torch.cat(parts).to(self.dtype).contiguous(), requires_grad=False)  # (N, K)
        self._load_bias(source)

    def finalize(self) -> None:
        self.weight.data = decode_layout(self.weight.data)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


@register_linear("sparse-bitmask", "sparse-24-bitmask")
class SparseLinear(DenseLinear):
    """Stored compressed (bitmask + values); computed dense, which is faster on CPU at 50% sparsity.

    Tensors are keyed `m.compressed` / `m.bitmask` / `m.shape` (compressed-tensors' last writer and presso's;
    `m.shape` is (2,) or (2, 1)) or, in older releases, `m.weight.compressed` etc.
    """

    def load(self, source) -> None:
        decompress = kernels.get("sparse_decompress")
        parts = []
        for p in self.prefixes:
            base = p if source.has(f"{p}.compressed") else f"{p}.weight"
            shape = tuple(int(s) for s in self._read(source, f"{base}.shape").reshape(-1).tolist())
            parts.append(decompress(self._read(source, f"{base}.compressed"),
                                    self._read(source, f"{base}.bitmask"), shape))
        self.weight = nn.Parameter(torch.cat(parts).to(self.dtype).contiguous(), requires_grad=False)
        self._load_bias(source)


@register_linear(*INT_CODECS)
class PackedIntLinear(LinearMethod):
    """compressed-tensors pack-quantized weights; the backend comes from the kernel dispatcher."""

    def load(self, source) -> None:
        self.shards = []
        for p in self.prefixes:
            n, k = (int(s) for s in self._read(source, f"{p}.weight_shape").tolist())
            zp = None
            if source.has(f"{p}.weight_zero_point") and not self.spec.symmetric:
                zp = unpack_zero_points(self._read(source, f"{p}.weight_zero_point"), self.spec.num_bits, n)
            g_idx = self._read(source, f"{p}.weight_g_idx") if source.has(f"{p}.weight_g_idx") else None
            self.shards.append(QuantizedWeight(
                packed=self._read(source, f"{p}.weight_packed"), scale=self._read(source, f"{p}.weight_scale"),
                zero=zp, g_idx=g_idx, num_bits=self.spec.num_bits, group_size=self.spec.group_size,
                out_features=n, in_features=k,
            ))
        self._load_bias(source)

    def finalize(self) -> None:
        shards, self.shards = self.shards, None
        same_g = all(_same(s.g_idx, shards[0].g_idx) for s in shards)
        if not same_g:  # act-order with different permutations per shard: one backend per shard
            self.kernels = [kernels.get("wq_linear")(s, self.dtype) for s in shards]
            return
        zeros = [s.zero for s in shards]
        merged = QuantizedWeight(
            packed=torch.cat([s.packed for s in shards]), scale=torch.cat([s.scale for s in shards]),
            zero=None if zeros[0] is None else torch.cat(zeros), g_idx=shards[0].g_idx,
            num_bits=shards[0].num_bits, group_size=shards[0].group_size,
            out_features=self.out_features, in_features=self.in_features,
        )
        self.kernels = [kernels.get("wq_linear")(merged, self.dtype)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.kernels) == 1:
            y = self.kernels[0](x)
        else:
            y = torch.cat([k(x) for k in self.kernels], dim=-1)
        return y if self.bias is None else y + self.bias


def decode_layout(w: torch.Tensor) -> torch.Tensor:
    """(N, K) weight -> the same values, stored column-major when that makes batch-1 matmuls faster.

    Measured here (torch 2.13 CPU, 1 thread, median of interleaved runs): an fp32 x (1, K) @ W^T streams
    1.2-1.9x faster from (K, N) storage when N > K (SmolLM2 qkv 960x576 1.24x, gate_up 3072x576 1.69x, tied
    head 49152x576 1.94x) and 0.56x for N < K (down 576x1536); at 8-64 rows the two layouts are within
    ~10 %. bf16 showed no consistent gain, so only fp32 weights with N > K are re-laid. Returns a (N, K)
    view, so F.linear and every reader of `.weight` see the usual shape.
    """
    n, k = w.shape
    if w.dtype != torch.float32 or n <= k:
        return w
    return w.t().contiguous().t()


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return torch.equal(a, b)


def make_linear(prefixes: list[str], in_features: int, out_sizes: list[int], bias: bool, spec: LinearSpec,
                dtype: torch.dtype, transposed: bool = False) -> LinearMethod:
    """The linear layer for `spec.codec` (ValueError for a codec no method is registered for)."""
    cls = LINEAR_METHODS.get(spec.codec)
    if cls is None:
        raise ValueError(f"no linear method for codec {spec.codec!r} (have {sorted(LINEAR_METHODS)})")
    return cls(prefixes, in_features, out_sizes, bias, spec, dtype, transposed)



@register_linear("aqlm")
class AqlmLinear(LinearMethod):
    """AQLM's HF layout (codes, codebooks, scales) per shard; the `aqlm_matmul` kernel is resolved at load."""

    def load(self, source) -> None:
        self.shards = []
        for p in self.prefixes:
            codes = self._read(source, f"{p}.codes")
            codebooks = self._read(source, f"{p}.codebooks").to(self.dtype)
            scales = self._read(source, f"{p}.scales").to(self.dtype)
            self.shards.append((codes, codebooks, scales))
        self._load_bias(source)
        self._matmul = kernels.get("aqlm_matmul")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self._matmul(x, codes, books, scales) for codes, books, scales in self.shards]
        y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return y if self.bias is None else y + self.bias
