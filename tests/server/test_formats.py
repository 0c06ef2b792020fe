"""Checkpoint formats beyond dense fp32 and pack-quantized: sparse bitmask (2:4 and unstructured), AQLM,
Qwen2 (qkv bias) and Llama-3 RoPE scaling. Each is checked against transformers on the same weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from presso.server.engine import LLM, SamplingParams
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore

PROMPT = list(range(3, 50))


def presso_logits(model_dir) -> torch.Tensor:
    core = EngineCore(EngineConfig(model=model_dir, dtype="float32", kv_cache_memory="8MiB", lm_head_quant="none"))
    return core.prompt_logits(PROMPT)


def hf_logits(model) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([PROMPT])).logits[0].float()


def sqnr_db(ref, x) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - x).pow(2).sum()))


def _linears(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")}


def _write(out, src, model, tensors: dict, quantization_config: dict):
    out.mkdir()
    for f in src.iterdir():
        if f.name not in ("model.safetensors", "config.json"):
            shutil.copy(f, out / f.name)
    cfg = json.loads((src / "config.json").read_text())
    cfg["quantization_config"] = quantization_config
    (out / "config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tensors.items()}, out / "model.safetensors")


@pytest.mark.parametrize("pattern", ["2:4", "unstructured"])
def test_sparse_bitmask_checkpoint(pattern, parity_llama_dir, tmp_path):
    helpers = pytest.importorskip("compressed_tensors.utils.helpers")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(parity_llama_dir, dtype=torch.float32)
    linears = _linears(model)
    state = {k: v for k, v in model.state_dict().items()
             if not any(k == f"{n}.weight" for n in linears)}
    for name, m in linears.items():
        w = m.weight.data
        if pattern == "2:4":
            groups = w.abs().reshape(-1, 4)
            keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, groups.topk(2, dim=1).indices, True)
            mask = keep.reshape(w.shape)
        else:
            mask = w.abs() > w.abs().median()
        w.mul_(mask)
        state[f"{name}.weight.shape"] = torch.tensor(w.shape)
        state[f"{name}.weight.compressed"] = w[mask]
        state[f"{name}.weight.bitmask"] = helpers.pack_bitmasks(mask)
        if pattern != "2:4":
            counts = mask.sum(1)
            state[f"{name}.weight.row_offsets"] = torch.cumsum(counts, 0) - counts
    fmt = "sparse-24-bitmask" if pattern == "2:4" else "sparse-bitmask"
    qc = {"quant_method": "compressed-tensors", "config_groups": {}, "format": fmt,
          "sparsity_config": {"format": fmt, "targets": ["Linear"], "ignore": ["lm_head"],
                              "sparsity_structure": pattern, "global_sparsity": 0.5}}
    _write(tmp_path / "sparse", parity_llama_dir, model, state, qc)
    assert sqnr_db(hf_logits(model), presso_logits(tmp_path / "sparse")) > 80


def test_aqlm_checkpoint(parity_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from presso.kernels.aqlm import aqlm_dequantize
    from presso.kernels.aqlm.reference import signed_codes

    model = AutoModelForCausalLM.from_pretrained(parity_llama_dir, dtype=torch.float32)
    linears = _linears(model)
    state = {k: v for k, v in model.state_dict().items() if not any(k == f"{n}.weight" for n in linears)}
    g = torch.Generator().manual_seed(0)
    for name, m in linears.items():
        n, k = m.weight.shape
        codes = signed_codes(torch.randint(0, 256, (n, k // 8, 2), generator=g), 8)
        books = torch.randn(2, 256, 1, 8, generator=g) * 0.1
        scales = torch.rand(n, 1, 1, 1, generator=g) + 0.5
        state.update({f"{name}.codes": codes, f"{name}.codebooks": books, f"{name}.scales": scales})
        m.weight.data = aqlm_dequantize(codes, books, scales)
    qc = {"quant_method": "aqlm", "in_group_size": 8, "out_group_size": 1, "num_codebooks": 2,
          "nbits_per_codebook": 8, "linear_weights_not_to_quantize": ["model.embed_tokens.weight", "lm_head.weight"]}
    _write(tmp_path / "aqlm", parity_llama_dir, model, state, qc)
    core = EngineCore(EngineConfig(model=tmp_path / "aqlm", dtype="float32", kv_cache_memory="8MiB"))
    assert core.stats().bits_per_weight < 32
    assert sqnr_db(hf_logits(model), presso_logits(tmp_path / "aqlm")) > 60


def _tiny(out, config) -> None:
    import sys
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import build_tokenizer

    tok = build_tokenizer(out)
    config.vocab_size, config.eos_token_id = len(tok), tok.eos_token_id
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)


@pytest.mark.parametrize("family", ["qwen2", "llama3-rope"])
def test_family_greedy_parity(family, tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.3)
    if family == "qwen2":
        config = Qwen2Config(**common, tie_word_embeddings=True)
    else:
        config = LlamaConfig(**common, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    _tiny(tmp_path, config)
    prompts = [list(range(3, 3 + n)) for n in (7, 90, 200)]
    outs = LLM(tmp_path, dtype="float32", block_size=8, max_num_batched_tokens=64).generate(
        prompts, SamplingParams(max_tokens=24, temperature=0))
    hf = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    for p, o in zip(prompts, outs, strict=True):
        ref = hf.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long), max_new_tokens=24,
                          do_sample=False, pad_token_id=0)[0, len(p):].tolist()
        assert list(o.token_ids) == ref
