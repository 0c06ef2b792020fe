"""The Llama family on presso's layers: Llama 2/3.x, Mistral, Qwen2 (qkv bias), Qwen3 (q/k norm), Phi-3 /
Phi-4-mini (fused checkpoint tensors, partial RoPE, longrope), SmolLM2 and SmolLM3 (NoPE layers).

GQA attention over the paged KV cache, RoPE with scaling variants, SwiGLU MLP, RMSNorm, optional tied
embeddings (dense, or packed-integer: server/layers/embedding.py). q/k/v and gate/up are merged linears
(one matmul each); what differs per Llama-like family (Qwen3's q/k norms, Phi-3's fused tensors and
partial RoPE, SmolLM3's NoPE layers) comes from server/models/families.py. Sliding-window layers (Mistral's
`sliding_window`, Qwen2's windowed layers) attend over their last W positions: the KV cache gives each layer
its window (server/models/windows.py). Structurally pruned checkpoints load as is: shapes come from the
config (explicit head_dim, fewer q heads per KV head, smaller intermediate_size). Gemma
(server/models/gemma.py) reuses the model shell through its hooks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from presso.kernels.attention.types import PagedBatch
from presso.server.kv.cache import KVCache, LayerKV
from presso.server.layers.embedding import QuantizedEmbedding
from presso.server.layers.linear import make_linear
from presso.server.layers.norms import RMSNorm
from presso.server.layers.quant_config import INT_CODECS, QuantConfig
from presso.server.layers.rotary import Rotary, apply_rotary
from presso.server.models.base import CausalLM
from presso.server.models.families import LlamaLayout, llama_layout
from presso.server.models.windows import sliding_windows


def no_rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """A NoPE layer's keys read back from a pre-RoPE codec: unrotated, fp32 like apply_rotary's callers get."""
    return x.float()


class LlamaLayer(nn.Module):
    def __init__(self, cfg: dict, i: int, qc: QuantConfig, dtype: torch.dtype, head_dim: int, layout: LlamaLayout):
        super().__init__()
        hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        self.head_dim = head_dim
        p = f"model.layers.{i}"
        q_sizes = [self.n_heads * head_dim, self.n_kv * head_dim, self.n_kv * head_dim]
        qkv = [f"{p}.self_attn.{n}" for n in layout.qkv]
        if len(qkv) == 1:  # Phi-3's fused qkv_proj: one checkpoint tensor, same [q | k | v] rows
            q_sizes = [sum(q_sizes)]
        self.qkv = make_linear(qkv, hidden, q_sizes, layout.qkv_bias, qc.spec_for(qkv[0]), dtype)
        o = f"{p}.self_attn.o_proj"
        self.o = make_linear([o], self.n_heads * head_dim, [hidden], layout.o_bias, qc.spec_for(o), dtype)
        gu = [f"{p}.mlp.{n}" for n in layout.gate_up]
        gu_sizes = [inter, inter] if len(gu) == 2 else [2 * inter]  # [gate, up] or fused [gate | up]
        self.gate_up = make_linear(gu, hidden, gu_sizes, layout.mlp_bias, qc.spec_for(gu[0]), dtype)
        d = f"{p}.mlp.down_proj"
        self.down = make_linear([d], inter, [hidden], layout.mlp_bias, qc.spec_for(d), dtype)
        eps = cfg.get("rms_norm_eps", 1e-6)
        self.ln1, self.ln2 = RMSNorm(hidden, eps, dtype), RMSNorm(hidden, eps, dtype)
        self.q_norm = self.k_norm = None
        if layout.qk_norm:  # per head over head_dim (Qwen3)
            self.q_norm, self.k_norm = RMSNorm(head_dim, eps, dtype), RMSNorm(head_dim, eps, dtype)
        self.use_rope = layout.rope_layers[i]
        self.scale = head_dim ** -0.5
        self.prefix = p

    def forward(self, x, cos, sin, batch: PagedBatch, kv: LayerKV, rope=None) -> torch.Tensor:
        """x (T, hidden) -> (T, hidden)."""
        t = x.shape[0]
        qkv = self.qkv(self.ln1(x))  # (T, (H + 2 Hkv) D): [q | k | v]
        n_qk = self.n_heads + self.n_kv
        qk = qkv[:, : n_qk * self.head_dim].view(t, n_qk, self.head_dim)  # q and k heads together
        if self.q_norm is not None:
            qk = torch.cat((self.q_norm(qk[:, : self.n_heads]), self.k_norm(qk[:, self.n_heads:])), dim=1)
        k_pre = qk[:, self.n_heads:]  # (T, Hkv, D) keys before RoPE (after Qwen3's k_norm)
        if self.use_rope:
            qk = apply_rotary(qk, cos, sin)  # q and k at once
        else:
            rope = no_rope
        q, k = qk[:, : self.n_heads], qk[:, self.n_heads:]  # (T, H, D), (T, Hkv, D)
        v = qkv[:, n_qk * self.head_dim:].view(t, self.n_kv, self.head_dim)
        a = kv.attend(q, k, v, batch, self.scale, k_pre, rope)
        x = x + self.o(a.reshape(t, -1))
        gate, up = self.gate_up(self.ln2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class LlamaForCausalLM(CausalLM):
    tied_by_default = False  # tie_word_embeddings when the config does not say

    def __init__(self, cfg: dict, qc: QuantConfig, dtype: torch.dtype):
        super().__init__(cfg, dtype)
        hidden = cfg["hidden_size"]
        self.head_dim = cfg.get("head_dim") or hidden // cfg["num_attention_heads"]
        self.num_kv_heads = cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
        self.num_layers = cfg["num_hidden_layers"]
        self.embed = nn.Parameter(torch.empty(0, dtype=dtype), requires_grad=False)  # (V, hidden)
        espec = qc.spec_for("model.embed_tokens", "Embedding")
        self.qembed = None  # a packed-integer embedding (and tied head) replaces `embed`
        if espec.codec in INT_CODECS:
            self.qembed = QuantizedEmbedding(["model.embed_tokens"], hidden, [cfg["vocab_size"]], False, espec,
                                             dtype)
        self.sliding_windows = sliding_windows(cfg)
        self.layout = llama_layout(cfg)
        self.layers = nn.ModuleList(self.make_layer(cfg, i, qc, dtype) for i in range(self.num_layers))
        self.norm = self.make_norm(hidden, cfg.get("rms_norm_eps", 1e-6), dtype)
        self.rotary = self.make_rotary(cfg)
        self.tied = cfg.get("tie_word_embeddings", self.tied_by_default)
        self.lm_head = None
        if not self.tied:
            self.lm_head = make_linear(["lm_head"], hidden, [cfg["vocab_size"]], False,
                                       qc.spec_for("lm_head"), dtype)

    def make_layer(self, cfg: dict, i: int, qc: QuantConfig, dtype: torch.dtype) -> nn.Module:
        return LlamaLayer(cfg, i, qc, dtype, self.head_dim, self.layout)

    def make_norm(self, hidden: int, eps: float, dtype: torch.dtype) -> nn.Module:
        return RMSNorm(hidden, eps, dtype)

    def make_rotary(self, cfg: dict) -> nn.Module:
        return Rotary(cfg, self.head_dim)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (T,) -> (T, hidden) in the model dtype."""
        if self.qembed is not None:
            return self.qembed.lookup(input_ids)  # only these rows dequantized
        return F.embedding(input_ids, self.embed)

    def plain_params(self, source):
        out = [(self.norm.weight, "model.norm.weight")]
        if self.qembed is None:
            out.append((self.embed, "model.embed_tokens.weight"))
        for layer in self.layers:
            out += [(layer.ln1.weight, f"{layer.prefix}.input_layernorm.weight"),
                    (layer.ln2.weight, f"{layer.prefix}.post_attention_layernorm.weight")]
            if layer.q_norm is not None:
                out += [(layer.q_norm.weight, f"{layer.prefix}.self_attn.q_norm.weight"),
                        (layer.k_norm.weight, f"{layer.prefix}.self_attn.k_norm.weight")]
        return out

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, batch: PagedBatch,
                kv: KVCache) -> torch.Tensor:
        x = self.embed_tokens(input_ids)  # (T, hidden)
        cos, sin = self.rotary.cos_sin(positions, self.dtype)
        for layer, layer_kv in zip(self.layers, kv.layers, strict=True):
            x = layer(x, cos, sin, batch, layer_kv, self.rope)
        return self.norm(x)

    def rope(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Keys read back before RoPE (pre-RoPE KV codecs): x (n, Hkv, D) at positions (n,) -> rotated, fp32."""
        return apply_rotary(x.float(), *self.rotary.cos_sin(positions, torch.float32))

    def head_weight(self) -> torch.Tensor | None:
        if self.tied:
            return None if self.qembed is not None else self.embed
        return getattr(self.lm_head, "weight", None)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (N, hidden) -> (N, V) fp32."""
        if self.head_kernel is not None:
            return self.head_kernel(hidden).float()
        if self.tied and self.qembed is not None:
            return self.qembed(hidden).float()  # the packed embedding through the wq_linear kernels
        if self.tied:
            return F.linear(hidden, self.embed).float()
        return self.lm_head(hidden).float()
