"""RVQ codebooks of keys before RoPE (arXiv 2410.15704's option): the engine stores k_proj's output as
codes and rotates every key it reads back to its position. RoPE is an isometry, so the rotated keys must
be exactly as far from the model's own post-RoPE keys as the decoded ones are from its pre-RoPE keys."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from presso.server.engine import LLM, SamplingParams
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore
from presso.server.engine.types import SamplingParams as Params
from presso.server.kv.attend import rotated_reader

PROMPT = [5 + (7 * i) % 90 for i in range(37)]


def test_keys_read_back_are_rotated_to_their_positions(kv_prerope_dir):
    core = EngineCore(EngineConfig(model=kv_prerope_dir, dtype="float32", kv_cache_dtype="rvq", block_size=4,
                                   kv_cache_memory="1MiB"))
    assert all(layer.codec.pre_rope for layer in core.kv.layers)
    core.add_request("r", PROMPT, Params(max_tokens=1, temperature=0.0))
    out = core.scheduler.schedule()
    core.runner.execute(out)
    table = torch.tensor(core.scheduler.requests["r"].block_ids)
    hf = AutoModelForCausalLM.from_pretrained(kv_prerope_dir, dtype=torch.float32).eval()
    pre = []
    hook = hf.model.layers[0].self_attn.k_proj.register_forward_hook(lambda m, i, o: pre.append(o[0]))
    with torch.inference_mode():
        post = hf(input_ids=torch.tensor([PROMPT]), use_cache=True).past_key_values.layers[0].keys[0]
    hook.remove()
    post = post.transpose(0, 1)  # (T, Hkv, D) after RoPE
    pre_k = pre[0].view(len(PROMPT), *post.shape[1:])  # (T, Hkv, D) before RoPE
    codec, pages = core.kv.layers[0].codec, core.kv.layers[0].pages
    stored, _ = codec.read(pages, table, len(PROMPT))
    rotated, _ = rotated_reader(codec, core.model.rope)(pages, table, len(PROMPT))
    err_pre = (stored - pre_k).norm(dim=-1)  # (T, Hkv) per-vector coding error
    err_post = (rotated - post).norm(dim=-1)
    torch.testing.assert_close(err_post, err_pre, rtol=1e-3, atol=1e-4)
    assert float(err_pre.norm() / pre_k.norm()) < 0.9  # the codes carry the keys


def test_prerope_codec_generates_and_matches_bf16_with_a_full_window(kv_prerope_dir):
    params = SamplingParams(max_tokens=10, temperature=0.0)
    kw = dict(dtype="float32", block_size=4, kv_cache_memory="2MiB", max_num_seqs=4, max_num_batched_tokens=7)
    want = LLM(kv_prerope_dir, kv_cache_dtype="bf16", **kw).generate([PROMPT[:20]], params)[0].token_ids
    windowed = LLM(kv_prerope_dir, kv_cache_dtype="rvq", kv_window=64, **kw).generate([PROMPT[:20]], params)
    assert windowed[0].token_ids == want  # every position read exactly: the codes are never used
    coded = LLM(kv_prerope_dir, kv_cache_dtype="rvq", **kw).generate([PROMPT[:20]], params)
    assert len(coded[0].token_ids) == 10


def test_gpt2_refuses_prerope_codebooks(parity_gpt2_dir, kv_prerope_dir, tmp_path):
    import shutil

    model = tmp_path / "gpt2"
    shutil.copytree(parity_gpt2_dir, model)
    shutil.copy(kv_prerope_dir / "presso_kv.safetensors", model)
    with pytest.raises(ValueError, match="before RoPE"):
        EngineCore(EngineConfig(model=model, kv_cache_dtype="rvq", kv_cache_memory="1MiB"))
