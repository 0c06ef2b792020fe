"""Acceptance for the Llama-like families (Qwen3, Phi-3 longrope + partial RoPE + fused tensors, SmolLM3 NoPE):
greedy tokens equal transformers' fp32 generate() under paging, chunked prefill and forced preemption; an int4
checkpoint (written by the compressed-tensors library) matches its dequantized reference; Phi-3's switch to
the long RoPE factors matches transformers' own cached forward."""

from __future__ import annotations

import json

import pytest
import torch
from family_models import FAMILIES, build_family_model
from test_greedy_parity import _hf_greedy
from test_quantized import presso_logits, reference_logits, sqnr_db

from presso.server.engine import LLM, SamplingParams
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore
from presso.server.models.llama import no_rope
from presso.server.models.registry import load_model


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(request, tmp_path_factory):
    return build_family_model(tmp_path_factory.mktemp(request.param), request.param)


def _prompts(vocab: int, n: int = 6, seed: int = 0) -> list[list[int]]:
    """Lengths 5..120: with 40 new tokens every sequence stays below the Phi-3 model's switch at 256."""
    g = torch.Generator().manual_seed(seed)
    lengths = [5, 120] + torch.randint(5, 121, (n - 2,), generator=g).tolist()
    return [torch.randint(3, vocab, (length,), generator=g).tolist() for length in lengths]


def test_greedy_matches_transformers(family_dir):
    llm = LLM(family_dir, dtype="float32", block_size=4, num_kv_blocks=48, max_num_seqs=6,
              max_num_batched_tokens=32, enable_prefix_caching=True)
    prompts = _prompts(len(llm.tokenizer))
    outs = llm.generate(prompts, SamplingParams(max_tokens=40, temperature=0.0))
    expected = _hf_greedy(family_dir, prompts, 40)
    stats = llm.engine.stats()
    assert stats.num_preemptions > 0  # the small cache really forced recompute
    assert len({t for o in outs for t in o.token_ids}) > 20  # a meaningful, non-degenerate check
    for i, (o, e) in enumerate(zip(outs, expected, strict=True)):
        assert o.token_ids == e, f"prompt {i} ({len(prompts[i])} tokens) diverged"
    assert stats.num_blocks_free == stats.num_blocks_total


def test_family_structure_is_read_from_the_config(family_dir):
    cfg = json.loads((family_dir / "config.json").read_text())
    model, _, source = load_model(family_dir, torch.float32)
    layers = model.layers
    assert source.used == set(source.weight_map)  # every checkpoint tensor was read (fused, q/k norms)
    if cfg["model_type"] == "qwen3":
        assert model.head_dim == 32 and layers[0].q_norm is not None
    if cfg["model_type"] == "phi3":
        assert layers[0].qkv.prefixes == ["model.layers.0.self_attn.qkv_proj"]
        assert model.rotary.inv_freq.numel() == 6  # partial_rotary_factor 0.75 of head_dim 16, halved
    if cfg["model_type"] == "smollm3":
        assert [layer.use_rope for layer in layers] == [True, False]


def test_phi3_long_factors_match_transformers_cached_forward(tmp_path):
    """A sequence crossing original_max_position_embeddings (64): presso's logits of the whole sequence equal
    transformers' step-by-step cached forward (short factors below 64, long factors from 64 on)."""
    from transformers import AutoModelForCausalLM, DynamicCache

    model_dir = build_family_model(tmp_path / "phi3", "phi3", original_max=64)
    tokens = torch.randint(3, 300, (100,), generator=torch.Generator().manual_seed(1)).tolist()
    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    cache = DynamicCache(config=hf.config)
    with torch.inference_mode():
        steps = [hf(torch.tensor([tokens[:40]]), cache=cache, use_cache=True).logits[0]]
        steps += [hf(torch.tensor([[t]]), cache=cache, use_cache=True).logits[0] for t in tokens[40:]]
    expected = torch.cat(steps)  # (100, V)
    core = EngineCore(EngineConfig(model=model_dir, dtype="float32", kv_cache_memory="8MiB"))
    got = core.prompt_logits(tokens)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    short_only = EngineCore(EngineConfig(model=build_family_model(tmp_path / "long", "phi3", original_max=4096),
                                         dtype="float32", kv_cache_memory="8MiB")).prompt_logits(tokens)
    assert not torch.allclose(short_only[64:], expected[64:], atol=1e-2)  # the long factors matter here


@pytest.mark.parametrize("dtype,threshold", [("float32", 80.0), ("bfloat16", 25.0)])
def test_int4_checkpoint_matches_dequantized_reference(family_dir, tmp_path, dtype, threshold):
    pytest.importorskip("compressed_tensors")
    from ct_checkpoint import quantize_rtn

    qdir = quantize_rtn(family_dir, tmp_path / "int4", bits=4, group_size=16, symmetric=False)
    ref = reference_logits(qdir, family_dir)
    assert sqnr_db(ref, presso_logits(qdir, dtype)) >= threshold
    assert sqnr_db(presso_logits(family_dir, "float32"), ref) < 40.0  # the int4 codec really changed the model


def test_unknown_model_type_lists_the_families(tmp_path, family_dir):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(family_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "model_type": "not-a-model"}))
    with pytest.raises(ValueError, match="qwen3.*phi3.*smollm3"):
        load_model(bad, torch.float32, impl="native")  # auto would take the generic path


def test_pre_rope_kv_codes_hold_each_familys_pre_rope_keys(family_dir, tmp_path):
    """RVQ codebooks of pre-RoPE keys (Qwen3: after k_norm; Phi-3: fused qkv rows; SmolLM3's NoPE layer: the
    keys as they are): what the engine stores decodes close to transformers' pre-RoPE keys of every layer, and
    the RoPE the engine applies to keys read back in that layer (none on NoPE layers; Phi-3's partial, scaled
    one) turns transformers' pre-RoPE keys into its post-RoPE cached keys."""
    import shutil

    from transformers import AutoModelForCausalLM

    from presso.compression.checkpoint.kv_codebooks import save_kv_codebooks
    from presso.compression.kv_rvq.calibrate import calibrate_rvq, parse_kv_spec
    from presso.compression.kv_rvq.collect import collect_kv
    from presso.server.engine.types import SamplingParams as Params
    from presso.server.kv.attend import rotated_reader

    kv_dir = tmp_path / "kv"
    shutil.copytree(family_dir, kv_dir)
    hf = AutoModelForCausalLM.from_pretrained(kv_dir, dtype=torch.float32).eval()
    windows = torch.randint(3, hf.config.vocab_size, (8, 96), generator=torch.Generator().manual_seed(0))
    spec, layers, report = calibrate_rvq(hf, windows, parse_kv_spec("rvq:stages=3,codebook=64,group=8,keys=auto"),
                                         progress=False)
    assert spec.keys == "pre_rope"  # every family exposes its pre-RoPE keys
    save_kv_codebooks(kv_dir, spec, layers, report)
    prompt = [5 + (7 * i) % 90 for i in range(37)]
    pre, _ = collect_kv(hf, torch.tensor([prompt]), "pre_rope", progress=False)  # per layer (T, Hkv, D)
    post, _ = collect_kv(hf, torch.tensor([prompt]), "post_rope", progress=False)
    core = EngineCore(EngineConfig(model=kv_dir, dtype="float32", kv_cache_dtype="rvq", block_size=4,
                                   kv_cache_memory="1MiB"))
    core.add_request("r", prompt, Params(max_tokens=1, temperature=0.0))
    core.runner.execute(core.scheduler.schedule())
    table = torch.tensor(core.scheduler.requests["r"].block_ids)
    for i, (layer, layer_kv) in enumerate(zip(core.model.layers, core.kv.layers, strict=True)):
        stored, _ = layer_kv.codec.read(layer_kv.pages, table, len(prompt))  # (T, Hkv, D) decoded
        assert float((stored - pre[i]).norm() / pre[i].norm()) < 0.7, i  # the codes carry this layer's keys
        rope = core.model.rope if layer.use_rope else no_rope
        torch.testing.assert_close(rope(pre[i], torch.arange(len(prompt))), post[i], rtol=1e-4, atol=1e-4)
        rotated, _ = rotated_reader(layer_kv.codec, rope)(layer_kv.pages, table, len(prompt))
        torch.testing.assert_close(rotated, rope(stored, torch.arange(len(prompt))))
