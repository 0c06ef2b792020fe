"""GGUF -> HF: a tiny Llama written as a GGUF the way llama.cpp's converter lays it out (q/k rows permuted
for its RoPE, GGUF names, Q8_0 and F32 tensors) comes back with the original weights and the same logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.quality.gguf_hf import gguf_sizes, gguf_to_hf, hf_name, unpermute


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf's layout: each head's two rotary halves interleaved row by row."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_unpermute_inverts_the_converters_permute():
    w = np.arange(6 * 8 * 5, dtype=np.float32).reshape(48, 5)
    assert np.array_equal(unpermute(permute(w, 6), 6), w)
    assert not np.array_equal(permute(w, 6), w)


def test_names():
    assert hf_name("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj.weight"
    assert hf_name("blk.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight"
    assert hf_name("token_embd.weight") == "model.embed_tokens.weight"
    assert hf_name("blk.0.attn_q.bias") is None


def _gguf_name(hf: str) -> str:
    inverse = {v: k for k, v in {
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}.items()}
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    _, _, layer, *rest = hf.split(".")
    return f"blk.{layer}.{inverse['.'.join(rest[:-1])]}.weight"


def test_tiny_llama_round_trip(tiny_llama_dir, tmp_path):
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_llama_dir)
    weights = load_file(str(tiny_llama_dir / "model.safetensors"))
    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(str(path), "llama")
    q8 = set()
    for name, tensor in weights.items():
        w = tensor.float().numpy()
        if name.endswith("q_proj.weight"):
            w = permute(w, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            w = permute(w, config.num_key_value_heads)
        if name.endswith("mlp.up_proj.weight"):  # one quantized type: Q8_0 blocks of 32 along the input
            writer.add_tensor(_gguf_name(name), quantize(w, GGMLQuantizationType.Q8_0),
                              raw_dtype=GGMLQuantizationType.Q8_0)
            q8.add(name)
        else:
            writer.add_tensor(_gguf_name(name), w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    out = gguf_to_hf(path, tiny_llama_dir, tmp_path / "hf")
    back = load_file(str(out / "model.safetensors"))
    assert set(back) == set(weights)
    for name, tensor in weights.items():
        if name in q8:  # Q8_0: per-block scale / 127 steps
            assert torch.allclose(back[name], tensor.float(), atol=float(tensor.abs().max()) / 100)
            assert not torch.equal(back[name], tensor.float())
        else:
            assert torch.equal(back[name], tensor.float()), name
    ids = torch.tensor([[5, 9, 17, 33, 2, 8]])
    ref = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    got = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.allclose(ref(ids).logits, got(ids).logits, atol=5e-2)
    sizes = gguf_sizes(path)
    assert sizes.types["Q8_0"] == config.num_hidden_layers and sizes.types["F32"] > 0
    assert 8.0 < sizes.linear_bits < 32.0
    with pytest.raises(PressoInputError, match="already exists"):
        gguf_to_hf(path, tiny_llama_dir, tmp_path / "hf")  # never overwrites
