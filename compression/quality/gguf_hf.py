"""A llama.cpp GGUF (any quant type) back to a Hugging Face Llama directory with the exact dequantized weights.

GGUF file -> gguf.GGUFReader -> per tensor gguf.quants.dequantize (the reference dequantizer of llama.cpp's
own Python package) -> (rows, cols) fp32 -> GGUF name mapped to the HF name (blk.N.attn_q -> model.layers.N
.self_attn.q_proj, ...) and q/k rows un-permuted (convert_hf_to_gguf.py interleaves each head's rotary
halves for llama.cpp's RoPE) -> model.safetensors + the dense model's config and tokenizer. So a peer's
quantized model is scored by presso's own scorer, on the same windows, as presso's checkpoints are.
Also: bytes and bits per weight of the Linear (2-D, non-embedding) tensors as stored in the GGUF.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from presso.compression.checkpoint.errors import PressoInputError

_LAYER = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
_BLOCK = re.compile(r"^blk\.(\d+)\.(\w+)\.weight$")
_TOKENIZER_FILES = {"vocab.json", "merges.txt", "generation_config.json", "chat_template.jinja"}
_SKIP = {"rope_freqs.weight"}  # llama.cpp's precomputed RoPE factors: HF derives them from config.json


@dataclass(frozen=True, slots=True)
class GGUFSizes:
    linear_bytes: int  # the Linear weights as stored (quant blocks included)
    linear_params: int
    file_bytes: int
    types: dict[str, int]  # quant type name -> number of Linear tensors of that type

    @property
    def linear_bits(self) -> float:
        return 8.0 * self.linear_bytes / max(self.linear_params, 1)


def hf_name(name: str) -> str | None:
    if name in _GLOBAL:
        return _GLOBAL[name]
    m = _BLOCK.match(name)
    if m is None or m.group(2) not in _LAYER:
        return None
    return f"model.layers.{m.group(1)}.{_LAYER[m.group(2)]}.weight"


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf's LlamaModel.permute on (heads * head_dim, in) rows."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_sizes(path: Path) -> GGUFSizes:
    from gguf import GGUFReader

    linear_bytes = linear_params = 0
    types: dict[str, int] = {}
    for t in GGUFReader(str(path)).tensors:
        if len(t.shape) == 2 and t.name.startswith("blk."):
            linear_bytes += int(t.n_bytes)
            linear_params += int(t.n_elements)
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return GGUFSizes(linear_bytes, linear_params, path.stat().st_size, types)


def gguf_to_hf(path: Path, dense_dir: Path, out: Path) -> Path:
    """Write `out` (a new HF dir): the GGUF's dequantized weights, dense_dir's config and tokenizer."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import save_file

    if out.exists():
        raise PressoInputError(f"{out} already exists")
    config = json.loads((dense_dir / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise PressoInputError(f"GGUF -> HF is implemented for Llama models, not {config.get('model_type')!r}")
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    tensors: dict[str, torch.Tensor] = {}
    for t in GGUFReader(str(path)).tensors:
        name = hf_name(t.name)
        if name is None:
            if t.name in _SKIP:
                continue
            raise PressoInputError(f"{path.name}: tensor {t.name} has no Hugging Face name here")
        # GGUF shape is (ne0=in, ne1=out); dequantize gives rows of `in` values: reshape to (out, in)
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(tuple(reversed(t.shape.tolist())))
        if name.endswith("q_proj.weight"):
            w = unpermute(w, heads)
        elif name.endswith("k_proj.weight"):
            w = unpermute(w, kv_heads)
        tensors[name] = torch.from_numpy(np.array(w, dtype=np.float32, copy=True))
    if "lm_head.weight" in tensors and config.get("tie_word_embeddings"):
        raise PressoInputError(f"{path.name} has output.weight but the dense config ties embeddings")
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = {k: v for k, v in config.items() if k != "quantization_config"}
    config["dtype"] = "float32"
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    for f in dense_dir.iterdir():
        if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens")) or f.name in _TOKENIZER_FILES):
            shutil.copy2(f, tmp / f.name)
    tmp.rename(out)
    return out
