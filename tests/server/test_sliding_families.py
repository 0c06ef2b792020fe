"""Acceptance for sliding-window families: greedy tokens equal transformers' fp32 greedy generate() (eager
attention) for Gemma 2, Gemma 3 and Mistral with a window shorter than most prompts, under paging, chunked
prefill and forced preemption; an all-sliding model holds fewer KV blocks than the same weights with full
attention and still matches; an int4 Gemma checkpoint's logits match its dequantized reference."""

from __future__ import annotations

import pytest
import torch
from sliding_models import FAMILIES, WINDOW, build_sliding_model

from presso.server.engine import LLM, SamplingParams
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sliding")
    return {f: build_sliding_model(root / f, f) for f in (*FAMILIES, "mistral-full")}


def _prompts(n: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = [5, 120] + torch.randint(5, 121, (n - 2,), generator=g).tolist()
    return [torch.randint(3, 380, (length,), generator=g).tolist() for length in lengths]


def hf_greedy(model_dir, prompts, max_new_tokens, ignore_eos=False):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    if ignore_eos:  # eos is then an ordinary token, as with SamplingParams(ignore_eos=True)
        model.generation_config.eos_token_id = None
    out = []
    for p in prompts:
        seq = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0)
        out.append(tuple(seq[0, len(p):].tolist()))
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_matches_transformers(family, family_dirs):
    llm = LLM(family_dirs[family], dtype="float32", block_size=4, num_kv_blocks=48, max_num_seqs=8,
              max_num_batched_tokens=32, enable_prefix_caching=True)
    prompts = _prompts(8)
    params = SamplingParams(max_tokens=24, temperature=0.0)
    outs = llm.generate(prompts, params)
    expected = hf_greedy(family_dirs[family], prompts, 24)
    stats = llm.engine.stats()
    assert stats.num_preemptions > 0  # the small cache really forced recompute
    assert len({t for o in outs for t in o.token_ids}) > 20  # a meaningful, non-degenerate check
    for i, (o, e) in enumerate(zip(outs, expected, strict=True)):
        assert o.token_ids == e, f"{family}: prompt {i} ({len(prompts[i])} tokens, window {WINDOW}) diverged"
    assert stats.num_blocks_free == stats.num_blocks_total


def test_tied_gemma_logits_match_transformers(tmp_path):
    """Gemma's default tied head (the scaled embedding doubles as the output head): fp32 logits over a prompt
    longer than the window equal transformers' (eager)."""
    from transformers import AutoModelForCausalLM

    model_dir = build_sliding_model(tmp_path / "tied", "gemma3-tied")
    prompt = _prompts(3, seed=3)[1][:90]
    got = EngineCore(EngineConfig(model=model_dir, dtype="float32", kv_cache_memory="8MiB")).prompt_logits(prompt)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    assert model.config.tie_word_embeddings
    with torch.inference_mode():
        want = model(torch.tensor([prompt])).logits[0]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def _run_one(model_dir, prompt, max_tokens, **kw):
    llm = LLM(model_dir, dtype="float32", block_size=4, max_num_batched_tokens=32, **kw)
    out = llm.generate([prompt], SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True))
    return out[0].token_ids, llm.engine.block_manager.max_blocks_used


def test_window_frees_blocks_and_still_matches(family_dirs):
    """A 200-token prompt + up to 40 generated tokens, window 24, blocks of 4: full attention holds every
    block of the sequence; the sliding model frees blocks behind its window (at most (W + chunk) / 4 + 2 at
    once) and fits a cache too small for the full model."""
    prompt = _prompts(3, seed=1)[1][:100] * 2  # 200 tokens, a repeated text
    sliding, full = family_dirs["mistral"], family_dirs["mistral-full"]
    tokens, used = _run_one(sliding, prompt, 40, num_kv_blocks=64)
    full_tokens, full_used = _run_one(full, prompt, 40, num_kv_blocks=64)
    assert full_used == 60  # (200 + 40 - 1 cached tokens) / 4: the last token is sampled, never cached
    assert used <= (WINDOW + 32) // 4 + 2 < full_used, (used, full_used)
    assert tokens == hf_greedy(sliding, [prompt], 40, ignore_eos=True)[0]
    assert full_tokens == hf_greedy(full, [prompt], 40, ignore_eos=True)[0]
    assert tokens != full_tokens  # the window really changed the computation
    small, _ = _run_one(sliding, prompt, 40, num_kv_blocks=20)  # a third of what full attention needs
    assert small == tokens
    with pytest.raises(ValueError, match="KV cache"):
        _run_one(full, prompt, 40, num_kv_blocks=20)


def test_mixed_model_keeps_blocks_but_skips_them(family_dirs):
    """Gemma mixes sliding and global layers: nothing is freed (global layers read every block), the
    scheduler knows it."""
    core = EngineCore(EngineConfig(model=family_dirs["gemma2"], dtype="float32", num_kv_blocks=64, block_size=4))
    assert core.kv.sliding_windows == [WINDOW, 0, WINDOW, 0]
    assert core.scheduler.sliding_window == 0
    mistral = EngineCore(EngineConfig(model=family_dirs["mistral"], dtype="float32", num_kv_blocks=64, block_size=4))
    assert mistral.scheduler.sliding_window == WINDOW


@pytest.mark.parametrize("family,dtype,threshold", [
    ("gemma2", "float32", 60.0), ("gemma3", "float32", 60.0), ("gemma2", "bfloat16", 25.0)])
def test_int4_logits_match_dequantized_reference(family, dtype, threshold, family_dirs, tmp_path):
    """fp32 runs the dequantized weights (exact up to summation order); bf16 runs the packed int4 CPU
    kernels with bf16 activations through 4 layers."""
    pytest.importorskip("compressed_tensors")
    from ct_checkpoint import quantize_rtn
    from test_quantized import library_dense_weights, sqnr_db
    from transformers import AutoModelForCausalLM

    base = family_dirs[family]
    qdir = quantize_rtn(base, tmp_path / "int4", bits=4, group_size=32, symmetric=False)
    prompt = _prompts(3, seed=2)[1][:80]  # longer than the window
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    dense = library_dense_weights(qdir)
    assert len(dense) == 7 * 4  # every q/k/v/o/gate/up/down of the 4 layers is packed int4
    with torch.inference_mode():
        unquantized = model(torch.tensor([prompt])).logits[0]
        for name, w in dense.items():
            model.get_submodule(name).weight.data = w
        ref = model(torch.tensor([prompt])).logits[0]
    got = EngineCore(EngineConfig(model=qdir, dtype=dtype, kv_cache_memory="8MiB",
                                  lm_head_quant="none")).prompt_logits(prompt)
    assert sqnr_db(ref, got) >= threshold, sqnr_db(ref, got)
    assert sqnr_db(ref, unquantized) < 40.0  # the int4 codec really changed the model


def test_multimodal_gemma3_is_refused(tmp_path):
    import json

    from presso.server.models.registry import load_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma3", "text_config": {}}))
    with pytest.raises(ValueError, match="multimodal Gemma 3.*gemma3_text"):
        load_model(tmp_path, torch.float32)


def test_compressed_kv_cache_follows_the_window(family_dirs, tmp_path):
    """Gemma 2 scored teacher-forced in chunks of 16 (later chunks read earlier ones through the window)
    with the int8 KV cache: per-position log-probs stay near the fp32 cache's, which honours the window
    exactly (the greedy test); ignoring the window moves them far more. (kivi2's 2-bit noise on this random
    model, ~0.56 nats per position with or without a window, is too large for this check; every codec's
    windowed paths are compared with their read-back twin in test_sliding_attend.py.)"""
    codec = "int8"
    prompt = _prompts(3, seed=4)[1][:100]

    import json
    import shutil

    wide = shutil.copytree(family_dirs["gemma2"], tmp_path / "wide")  # the same weights, window past the prompt
    cfg = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**cfg, "sliding_window": 1000}))

    def logprobs(model_dir, kv_cache):
        llm = LLM(model_dir, dtype="float32", kv_cache_dtype=kv_cache, block_size=4, max_num_batched_tokens=16,
                  enable_prefix_caching=False)
        out = llm.generate([prompt], SamplingParams(max_tokens=0, prompt_logprobs=0, temperature=0.0))[0]
        return torch.tensor([e.logprob for e in out.prompt_logprobs[1:]])

    exact = logprobs(family_dirs["gemma2"], "fp32")
    codec_gap = (logprobs(family_dirs["gemma2"], codec) - exact).abs().mean()
    window_gap = (logprobs(wide, "fp32") - exact).abs().mean()
    assert codec_gap < 0.05 and codec_gap * 5 < window_gap, (codec_gap, window_gap)
