"""Quantized checkpoints (compressed-tensors, written by the library): presso's first-step logits match the
dequantized reference within an SQNR bound per codec. The reference is the fp32 transformers model whose
linear weights were decompressed by the compressed-tensors library itself (not by presso's unpacker)."""

from __future__ import annotations

import pytest
import torch

from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore

PROMPT = list(range(3, 60))
# (codec, presso dtype) -> minimum SQNR in dB. fp32 runs the dequantized weight exactly; bf16 runs the packed
# int8/int4 CPU matmuls with bf16 activations (about 8 bits of mantissa through 2 layers).
THRESHOLDS = {
    ("int8", "float32"): 80.0, ("int4", "float32"): 80.0, ("int4-channel", "float32"): 80.0,
    ("int8", "bfloat16"): 25.0, ("int4", "bfloat16"): 25.0, ("int4-channel", "bfloat16"): 25.0,
}


def presso_logits(model_dir, dtype: str, lm_head_quant: str = "none") -> torch.Tensor:
    core = EngineCore(EngineConfig(model=model_dir, dtype=dtype, kv_cache_memory="8MiB", lm_head_quant=lm_head_quant))
    return core.prompt_logits(PROMPT)  # (T, V) fp32


def library_dense_weights(model_dir) -> dict[str, torch.Tensor]:
    """{module name: fp32 (N, K) weight} decompressed with compressed-tensors' own functions."""
    import json

    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize
    from safetensors.torch import load_file

    qcfg = json.loads((model_dir / "config.json").read_text())["quantization_config"]
    args = QuantizationArgs(**qcfg["config_groups"]["group_0"]["weights"])
    state = load_file(model_dir / "model.safetensors")
    out = {}
    for key in state:
        if not key.endswith(".weight_packed"):
            continue
        name = key[: -len(".weight_packed")]
        shape = torch.Size(state[f"{name}.weight_shape"].tolist())
        q = unpack_from_int32(state[key], args.num_bits, shape)
        scale = state[f"{name}.weight_scale"]
        zp = state.get(f"{name}.weight_zero_point")
        if zp is not None:
            zp = unpack_from_int32(zp, args.num_bits, scale.shape, packed_dim=0)
        out[name] = dequantize(q, scale, zp, args, dtype=torch.float32)
    return out


def reference_logits(model_dir, base_dir) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    weights = library_dense_weights(model_dir)
    assert weights
    for name, w in weights.items():
        model.get_submodule(name).weight.data = w
    with torch.inference_mode():
        return model(torch.tensor([PROMPT])).logits[0].float()


def sqnr_db(ref: torch.Tensor, x: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - x).pow(2).sum()))


@pytest.mark.parametrize("codec,dtype", sorted(THRESHOLDS))
def test_first_step_logits_match_dequantized_reference(codec, dtype, quantized_dirs, parity_llama_dir):
    model_dir = quantized_dirs[codec]
    ref = reference_logits(model_dir, parity_llama_dir)
    got = presso_logits(model_dir, dtype)
    assert sqnr_db(ref, got) >= THRESHOLDS[(codec, dtype)], sqnr_db(ref, got)


def test_int8_output_head_is_close(quantized_dirs, parity_llama_dir):
    """lm_head_quant=int8 (the default for quantized checkpoints) costs little accuracy on top of the codec."""
    ref = reference_logits(quantized_dirs["int8"], parity_llama_dir)
    assert sqnr_db(ref, presso_logits(quantized_dirs["int8"], "float32", "int8")) >= 35.0


def test_int4_output_head_is_close_and_packed(quantized_dirs, parity_llama_dir):
    """lm_head_quant=int4 (group 64 RTN, opt-in) runs torch's int4 kernel and stays near the reference."""
    ref = reference_logits(quantized_dirs["int8"], parity_llama_dir)
    int8 = sqnr_db(ref, presso_logits(quantized_dirs["int8"], "bfloat16", "int8"))
    int4 = sqnr_db(ref, presso_logits(quantized_dirs["int8"], "bfloat16", "int4"))
    assert 15.0 <= int4 < int8, (int4, int8)
    core = EngineCore(EngineConfig(model=quantized_dirs["int8"], kv_cache_memory="8MiB", lm_head_quant="int4"))
    assert core.model.head_kernel.mode == "int4"


def test_quantization_is_not_a_no_op(quantized_dirs, parity_llama_dir):
    """The dense model's logits differ from the int4 reference: the check above compares real codecs."""
    dense = presso_logits(parity_llama_dir, "float32")
    assert sqnr_db(dense, reference_logits(quantized_dirs["int4"], parity_llama_dir)) < 40.0


def test_packed_backends_are_used_with_bf16(quantized_dirs):
    core = EngineCore(EngineConfig(model=quantized_dirs["int8"], kv_cache_memory="8MiB"))
    assert core.dtype == torch.bfloat16
    modes = {k.mode for _, m in core.model.linears() for k in getattr(m, "kernels", [])}
    assert modes and modes <= {"int8", "int8x2"}  # int8x2: one-row decodes as two int4 planes, else int8
    stats = core.stats()
    assert stats.bits_per_weight < 32 and stats.num_parameters > 0
