"""Per-family layout of Llama-like checkpoints: what differs between Llama, Mistral, Qwen2/3, Phi-3 and SmolLM3.

config.json (a dict) -> LlamaLayout, read by server/models/llama.py's layer: the checkpoint names of the
attention and MLP projections (separate q/k/v and gate/up, or Phi-3's fused `qkv_proj` and `gate_up_proj`),
which projections carry a bias, whether q and k get a per-head RMSNorm before RoPE (Qwen3), and which layers
apply RoPE at all (SmolLM3's NoPE layers). One small table instead of one model file per family.
"""

from __future__ import annotations

from dataclasses import dataclass

# model_type values served by LlamaForCausalLM (smollm/smollm2 are Llama checkpoints under another name)
LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "phi3", "smollm", "smollm2", "smollm3")


@dataclass(frozen=True, slots=True)
class LlamaLayout:
    qkv: tuple[str, ...]  # projection names under `self_attn.`, concatenated into one matmul ([q | k | v])
    gate_up: tuple[str, ...]  # names under `mlp.` ([gate | up])
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    qk_norm: bool  # Qwen3: RMSNorm over head_dim on q and k (per head) before RoPE
    rope_layers: tuple[bool, ...]  # per decoder layer: True where the layer applies RoPE


def no_rope_flags(cfg: dict) -> tuple[bool, ...]:
    """Per layer, True where RoPE is applied: SmolLM3's `no_rope_layers` (1 = RoPE, 0 = NoPE), else derived
    from `no_rope_layer_interval` (every n-th layer is NoPE) when the model_type is smollm3, else all True."""
    n = cfg["num_hidden_layers"]
    flags = cfg.get("no_rope_layers")
    if flags is not None:
        if len(flags) != n:
            raise ValueError(f"config no_rope_layers has {len(flags)} entries for {n} layers")
        return tuple(bool(f) for f in flags)
    interval = cfg.get("no_rope_layer_interval")
    if interval and cfg.get("model_type") == "smollm3":
        return tuple((i + 1) % interval != 0 for i in range(n))
    return (True,) * n


def llama_layout(cfg: dict) -> LlamaLayout:
    kind = cfg.get("model_type")
    fused = kind == "phi3"
    qwen2 = kind == "qwen2"
    attention_bias = cfg.get("attention_bias", qwen2)
    return LlamaLayout(
        qkv=("qkv_proj",) if fused else ("q_proj", "k_proj", "v_proj"),
        gate_up=("gate_up_proj",) if fused else ("gate_proj", "up_proj"),
        qkv_bias=bool(attention_bias),
        o_bias=False if qwen2 else bool(attention_bias),  # Qwen2 biases q/k/v only
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        qk_norm=kind == "qwen3",
        rope_layers=no_rope_flags(cfg),
    )
