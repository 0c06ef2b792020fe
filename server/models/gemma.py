"""Gemma 2 and Gemma 3 (text) on presso's layers, in the Llama model shell (llama.py's hooks).

What differs from Llama, following transformers' modeling_gemma2/3 semantics:
- layers alternate sliding-window and global attention (`layer_types`, server/models/windows.py); the KV
  cache gives each layer its window, so sliding layers read only their last W positions;
- Gemma 3: local layers rotate with `rope_local_base_freq` (or rope_parameters["sliding_attention"]),
  global ones with `rope_theta` and its scaling (rope_parameters["full_attention"]): two rotary tables;
- scores scaled by query_pre_attn_scalar ** -0.5 (not head_dim); head_dim from the config (256);
- embeddings multiplied by sqrt(hidden) rounded to the model dtype;
- sandwich norms: RMSNorm before and after attention and before and after the MLP, all (1 + weight);
- GELU-tanh gated MLP;
- Gemma 2: attention scores soft-capped (cap * tanh(x / cap)) in every KV codec's attention, and the
  final logits soft-capped; Gemma 3: q/k RMSNorm per head before RoPE (the pre-RoPE key a KV codec may
  store is the normed one), final soft-capping only if its config sets one.
The multimodal Gemma 3 (model_type gemma3) is refused with an error naming its text-only form.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from presso.kernels.attention.types import PagedBatch
from presso.server.kv.cache import KVCache, LayerKV
from presso.server.layers.linear import make_linear
from presso.server.layers.norms import OffsetRMSNorm
from presso.server.layers.quant_config import QuantConfig
from presso.server.layers.rotary import Rotary, apply_rotary, rope_parameters
from presso.server.models.llama import LlamaForCausalLM
from presso.server.models.windows import layer_types

GELU = {"gelu_pytorch_tanh": "tanh", "gelu_new": "tanh", "gelu_fast": "tanh", "gelu": "none"}
LAYER_TYPES = ("sliding_attention", "full_attention")


def rope_configs(cfg: dict) -> dict[str, dict]:
    """A flat, Llama-style rope config per layer type (what Rotary reads)."""
    params = cfg.get("rope_parameters") or {}
    if any(t in params for t in LAYER_TYPES):  # transformers 5 writes Gemma 3's per layer type
        per = {t: dict(params.get(t) or {"rope_type": "default"}) for t in LAYER_TYPES}
    elif cfg.get("model_type") == "gemma3_text":  # older configs: global theta + scaling, local base freq
        full = {"rope_theta": cfg.get("rope_theta", 1_000_000.0), **(cfg.get("rope_scaling") or {})}
        per = {"full_attention": full,
               "sliding_attention": {"rope_theta": cfg.get("rope_local_base_freq", 10_000.0), "rope_type": "default"}}
    else:  # Gemma 2: one RoPE for every layer
        per = {t: rope_parameters(cfg) for t in LAYER_TYPES}
    return {t: {**cfg, "model_type": "llama", "rope_scaling": None, "rope_parameters": p,
                "rope_theta": p.get("rope_theta", 10_000.0)} for t, p in per.items()}


class GemmaLayer(nn.Module):
    def __init__(self, cfg: dict, i: int, qc: QuantConfig, dtype: torch.dtype, head_dim: int, kind: str):
        super().__init__()
        hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        self.head_dim, self.kind = head_dim, kind
        bias = cfg.get("attention_bias", False)
        p = f"model.layers.{i}"
        qkv = [f"{p}.self_attn.{n}_proj" for n in "qkv"]
        sizes = [self.n_heads * head_dim, self.n_kv * head_dim, self.n_kv * head_dim]
        self.qkv = make_linear(qkv, hidden, sizes, bias, qc.spec_for(qkv[0]), dtype)
        o = f"{p}.self_attn.o_proj"
        self.o = make_linear([o], self.n_heads * head_dim, [hidden], bias, qc.spec_for(o), dtype)
        gu = [f"{p}.mlp.gate_proj", f"{p}.mlp.up_proj"]
        self.gate_up = make_linear(gu, hidden, [inter, inter], False, qc.spec_for(gu[0]), dtype)
        d = f"{p}.mlp.down_proj"
        self.down = make_linear([d], inter, [hidden], False, qc.spec_for(d), dtype)
        eps = cfg.get("rms_norm_eps", 1e-6)
        self.norms = nn.ModuleDict({n: OffsetRMSNorm(hidden, eps, dtype) for n in (
            "input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")})
        self.qk_norm = cfg.get("model_type") == "gemma3_text"
        if self.qk_norm:
            self.q_norm, self.k_norm = OffsetRMSNorm(head_dim, eps, dtype), OffsetRMSNorm(head_dim, eps, dtype)
        self.scale = float(cfg.get("query_pre_attn_scalar") or head_dim) ** -0.5
        # Gemma 3's attention takes no soft-cap (transformers passes none even when the config has one)
        self.softcap = 0.0 if self.qk_norm else float(cfg.get("attn_logit_softcapping") or 0.0)
        act = cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh"
        if act not in GELU:
            raise ValueError(f"config.json hidden_activation {act!r} is not supported (supported: {sorted(GELU)})")
        self.approximate = GELU[act]
        self.prefix = p

    def forward(self, x, cos, sin, batch: PagedBatch, kv: LayerKV, rope=None) -> torch.Tensor:
        """x (T, hidden) -> (T, hidden)."""
        t, h, hd = x.shape[0], self.n_heads, self.head_dim
        qkv = self.qkv(self.norms["input_layernorm"](x))  # (T, (H + 2 Hkv) D): [q | k | v]
        q = qkv[:, : h * hd].view(t, h, hd)
        k = qkv[:, h * hd: (h + self.n_kv) * hd].view(t, self.n_kv, hd)
        v = qkv[:, (h + self.n_kv) * hd:].view(t, self.n_kv, hd)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        qk = apply_rotary(torch.cat([q, k], dim=1), cos, sin)  # (T, H + Hkv, D): q and k at once
        a = kv.attend(qk[:, :h], qk[:, h:], v, batch, self.scale, k, rope, self.softcap)
        x = x + self.norms["post_attention_layernorm"](self.o(a.reshape(t, -1)))
        gate, up = self.gate_up(self.norms["pre_feedforward_layernorm"](x)).chunk(2, dim=-1)
        y = self.down(F.gelu(gate, approximate=self.approximate) * up)
        return x + self.norms["post_feedforward_layernorm"](y)


class GemmaForCausalLM(LlamaForCausalLM):
    tied_by_default = True

    def __init__(self, cfg: dict, qc: QuantConfig, dtype: torch.dtype):
        if cfg.get("use_bidirectional_attention"):
            raise ValueError("config.json use_bidirectional_attention (an embedding model) is not supported")
        super().__init__(cfg, qc, dtype)
        self.kinds = [layer.kind for layer in self.layers]
        # sqrt(hidden) rounded to the model dtype, as transformers' scaled embedding
        self.register_buffer("normalizer", torch.tensor(cfg["hidden_size"] ** 0.5, dtype=dtype), persistent=False)
        self.final_softcap = float(cfg.get("final_logit_softcapping") or 0.0)
        self.ropes = {kind: functools.partial(self.rope_for, kind) for kind in LAYER_TYPES}

    def make_layer(self, cfg, i, qc, dtype):
        return GemmaLayer(cfg, i, qc, dtype, self.head_dim, layer_types(cfg)[i])

    def make_norm(self, hidden, eps, dtype):
        return OffsetRMSNorm(hidden, eps, dtype)

    def make_rotary(self, cfg):
        return nn.ModuleDict({kind: Rotary(c, self.head_dim) for kind, c in rope_configs(cfg).items()})

    def plain_params(self, source):
        out = [(self.norm.weight, "model.norm.weight")]
        if self.qembed is None:
            out.append((self.embed, "model.embed_tokens.weight"))
        for layer in self.layers:
            out += [(norm.weight, f"{layer.prefix}.{name}.weight") for name, norm in layer.norms.items()]
            if layer.qk_norm:
                out += [(layer.q_norm.weight, f"{layer.prefix}.self_attn.q_norm.weight"),
                        (layer.k_norm.weight, f"{layer.prefix}.self_attn.k_norm.weight")]
        return out

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, batch: PagedBatch,
                kv: KVCache) -> torch.Tensor:
        x = self.embed_tokens(input_ids) * self.normalizer  # (T, hidden)
        tables = {kind: self.rotary[kind].cos_sin(positions, self.dtype) for kind in set(self.kinds)}
        for layer, layer_kv in zip(self.layers, kv.layers, strict=True):
            x = layer(x, *tables[layer.kind], batch, layer_kv, self.ropes[layer.kind])
        return self.norm(x)

    def rope_for(self, kind: str, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Pre-RoPE keys read back: x (n, Hkv, D) at positions (n,) rotated with this layer type's RoPE, fp32."""
        return apply_rotary(x.float(), *self.rotary[kind].cos_sin(positions, torch.float32))

    def rope(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.rope_for("full_attention", x, positions)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (N, hidden) -> (N, V) fp32, soft-capped when the config says so (Gemma 2: 30)."""
        logits = super().logits(hidden)
        if self.final_softcap:
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        return logits
