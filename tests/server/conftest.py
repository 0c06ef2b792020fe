"""Server test fixtures: a tiny Llama with peaked logits (so greedy parity is a meaningful check) and
compressed-tensors int8 / int4 copies of it written by the compressed-tensors library, and a copy with
KV-cache RVQ codebooks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # ct_checkpoint (after tests/: `conftest` is the root one)
from conftest import build_tokenizer  # noqa: E402


def build_parity_llama(out: Path, seed: int = 0, arch: str = "llama") -> Path:
    """2 layers, GQA 4/2 heads, untied head, init std 0.3: diverse greedy continuations, few near-ties."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.3,
            tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            rope_theta=10000.0,
        )
    else:
        config = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4, n_positions=512,
                            initializer_range=0.3, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def parity_llama_dir(tmp_path_factory) -> Path:
    return build_parity_llama(tmp_path_factory.mktemp("parity-llama"))


@pytest.fixture(scope="session")
def parity_gpt2_dir(tmp_path_factory) -> Path:
    return build_parity_llama(tmp_path_factory.mktemp("parity-gpt2"), arch="gpt2")


@pytest.fixture(scope="session")
def quantized_dirs(tmp_path_factory, parity_llama_dir) -> dict[str, Path]:
    pytest.importorskip("compressed_tensors")
    from ct_checkpoint import quantize_rtn

    root = tmp_path_factory.mktemp("quantized")
    return {
        "int8": quantize_rtn(parity_llama_dir, root / "int8", bits=8, group_size=None, symmetric=True),
        "int4": quantize_rtn(parity_llama_dir, root / "int4", bits=4, group_size=32, symmetric=False),
        "int4-channel": quantize_rtn(parity_llama_dir, root / "int4c", bits=4, group_size=None, symmetric=True),
    }


def _with_kv_codebooks(model_dir, out, spec_text: str):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from presso.compression.checkpoint.kv_codebooks import save_kv_codebooks
    from presso.compression.kv_rvq.calibrate import calibrate_rvq, parse_kv_spec

    shutil.copytree(model_dir, out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    g = torch.Generator().manual_seed(0)
    windows = torch.randint(3, model.config.vocab_size, (8, 96), generator=g)
    spec = parse_kv_spec(spec_text)
    spec, layers, report = calibrate_rvq(model, windows, spec, progress=False)
    save_kv_codebooks(out, spec, layers, report)
    return out


@pytest.fixture(scope="session")
def kv_model_dir(parity_llama_dir, tmp_path_factory):
    """The parity model (head_dim 16, 2 KV heads) plus 2-stage RVQ codebooks of post-RoPE keys (the
    code-space decode path): 12 B/token/layer vs bf16's 64."""
    return _with_kv_codebooks(parity_llama_dir, tmp_path_factory.mktemp("kv-engine") / "model",
                              "rvq:stages=2,codebook=64,group=8,keys=post_rope")


@pytest.fixture(scope="session")
def kv_prerope_dir(parity_llama_dir, tmp_path_factory):
    """The same with codebooks of keys taken before RoPE (k_proj's output)."""
    return _with_kv_codebooks(parity_llama_dir, tmp_path_factory.mktemp("kv-prerope") / "model",
                              "rvq:stages=2,codebook=64,group=8,keys=pre_rope")
