"""GPT-2 on presso's layers: learned positions, LayerNorm, fused c_attn (Conv1D, stored transposed),
multi-head attention over the paged KV cache, gelu_new MLP, output head tied to the token embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from presso.kernels.attention.types import PagedBatch
from presso.server.kv.cache import KVCache, LayerKV
from presso.server.layers.linear import make_linear
from presso.server.layers.norms import LayerNorm
from presso.server.layers.quant_config import LinearSpec, QuantConfig
from presso.server.models.base import CausalLM


class GPT2Block(nn.Module):
    def __init__(self, cfg: dict, prefix: str, dtype: torch.dtype):
        super().__init__()
        hidden = cfg["n_embd"]
        inner = cfg.get("n_inner") or 4 * hidden
        self.n_heads = cfg["n_head"]
        self.head_dim = hidden // self.n_heads
        eps = cfg.get("layer_norm_epsilon", 1e-5)
        dense = LinearSpec()
        self.ln1, self.ln2 = LayerNorm(hidden, eps, dtype), LayerNorm(hidden, eps, dtype)
        self.c_attn = make_linear([f"{prefix}.attn.c_attn"], hidden, [3 * hidden], True, dense, dtype, True)
        self.c_proj = make_linear([f"{prefix}.attn.c_proj"], hidden, [hidden], True, dense, dtype, True)
        self.c_fc = make_linear([f"{prefix}.mlp.c_fc"], hidden, [inner], True, dense, dtype, True)
        self.mlp_proj = make_linear([f"{prefix}.mlp.c_proj"], inner, [hidden], True, dense, dtype, True)
        self.scale = self.head_dim ** -0.5 if cfg.get("scale_attn_weights", True) else 1.0
        self.prefix = prefix

    def forward(self, x, batch: PagedBatch, kv: LayerKV) -> torch.Tensor:
        t = x.shape[0]
        q, k, v = self.c_attn(self.ln1(x)).view(t, 3, self.n_heads, self.head_dim).unbind(1)  # (T, H, D) each
        a = kv.attend(q, k, v, batch, self.scale)
        x = x + self.c_proj(a.reshape(t, -1))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln2(x)), approximate="tanh"))


class GPT2LMHeadModel(CausalLM):
    def __init__(self, cfg: dict, qc: QuantConfig, dtype: torch.dtype, root: str = "transformer"):
        super().__init__(cfg, dtype)
        if qc.quantized:
            raise ValueError("quantized GPT-2 checkpoints are not supported (Conv1D layers)")
        self.root = root
        self.head_dim = cfg["n_embd"] // cfg["n_head"]
        self.num_kv_heads = cfg["n_head"]
        self.num_layers = cfg["n_layer"]
        self.wte = nn.Parameter(torch.empty(0, dtype=dtype), requires_grad=False)  # (V, hidden)
        self.wpe = nn.Parameter(torch.empty(0, dtype=dtype), requires_grad=False)  # (P, hidden)
        pre = f"{root}." if root else ""
        self.h = nn.ModuleList(GPT2Block(cfg, f"{pre}h.{i}", dtype) for i in range(self.num_layers))
        self.ln_f = LayerNorm(cfg["n_embd"], cfg.get("layer_norm_epsilon", 1e-5), dtype)

    def plain_params(self, source):
        pre = f"{self.root}." if self.root else ""
        out = [(self.wte, f"{pre}wte.weight"), (self.wpe, f"{pre}wpe.weight"),
               (self.ln_f.weight, f"{pre}ln_f.weight"), (self.ln_f.bias, f"{pre}ln_f.bias")]
        for b in self.h:
            for ln, name in ((b.ln1, "ln_1"), (b.ln2, "ln_2")):
                out += [(ln.weight, f"{b.prefix}.{name}.weight"), (ln.bias, f"{b.prefix}.{name}.bias")]
        return out

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, batch: PagedBatch,
                kv: KVCache) -> torch.Tensor:
        x = F.embedding(input_ids, self.wte) + F.embedding(positions, self.wpe)  # (T, hidden)
        for block, layer_kv in zip(self.h, kv.layers, strict=True):
            x = block(x, batch, layer_kv)
        return self.ln_f(x)

    def head_weight(self) -> torch.Tensor | None:
        return self.wte

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.head_kernel is not None:
            return self.head_kernel(hidden).float()
        return F.linear(hidden, self.wte).float()
