"""Acceptance for the generic model path (server/models/generic.py): architectures presso has no class for
run on transformers' modeling code with presso's paged attention, and their greedy tokens equal transformers'
fp32 generate() under paging, chunked prefill and forced preemption (test_greedy_parity's harness). Llama
forced through the path matches too; a compressed-tensors int4 checkpoint keeps presso's packed linears; an
encoder-decoder model is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_greedy_parity import _hf_greedy, _prompts

from presso.server.engine import LLM, SamplingParams
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore

# Architectures transformers has and presso does not implement natively; each exercises something the
# Llama path does not: Olmo2 q/k RMSNorm over all heads and post-norms, Granite's embedding/residual/
# attention multipliers and logit scaling (applied by its head code), GPT-NeoX's partial rotary,
# fused qkv and parallel residual.
GENERIC_ARCHS = ("olmo2", "granite", "gpt_neox")


def _config(arch: str, vocab: int, bos: int, eos: int):
    import transformers

    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=512, initializer_range=0.3,
                  tie_word_embeddings=False, bos_token_id=bos, eos_token_id=eos, pad_token_id=None)
    if arch == "olmo2":
        return transformers.Olmo2Config(num_key_value_heads=2, **common)
    if arch == "granite":
        return transformers.GraniteConfig(num_key_value_heads=2, embedding_multiplier=2.0, residual_multiplier=0.5,
                                          attention_multiplier=0.2, logits_scaling=2.0, **common)
    if arch == "gpt_neox":
        return transformers.GPTNeoXConfig(rotary_pct=0.5, **common)
    raise AssertionError(arch)


def build_generic_model(out: Path, arch: str, seed: int = 0) -> Path:
    """A tiny random model of `arch` from transformers' own config class, saved with save_pretrained."""
    from conftest import build_tokenizer
    from transformers import AutoModelForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(arch, len(tok), tok.bos_token_id, tok.eos_token_id))
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def generic_dirs(tmp_path_factory) -> dict[str, Path]:
    return {a: build_generic_model(tmp_path_factory.mktemp(f"generic-{a}"), a) for a in GENERIC_ARCHS}


def _parity(model_dir: Path, n_prompts: int, **engine) -> LLM:
    """Greedy tokens of the engine equal transformers' fp32 generate(); a cache of 130 4-token blocks and a
    64-token step budget force preemption and chunked prefill."""
    llm = LLM(model_dir, dtype="float32", block_size=4, num_kv_blocks=130, max_num_seqs=16,
              max_num_batched_tokens=64, enable_prefix_caching=True, **engine)
    prompts = _prompts(len(llm.tokenizer))[:n_prompts]
    outs = llm.generate(prompts, SamplingParams(max_tokens=64, temperature=0.0))
    expected = _hf_greedy(model_dir, prompts, 64)
    stats = llm.engine.stats()
    assert stats.model_impl == "generic"
    assert stats.num_preemptions > 0  # the tiny cache really forced recompute
    assert len({t for o in outs for t in o.token_ids}) > 20  # a meaningful, non-degenerate check
    for i, (o, e) in enumerate(zip(outs, expected, strict=True)):
        assert o.token_ids == e, f"prompt {i} ({len(prompts[i])} tokens) diverged"
    assert stats.num_blocks_free == stats.num_blocks_total
    return llm


@pytest.mark.slow  # ~1-2 min each on 2 shared cores: the parity harness runs long
@pytest.mark.parametrize("arch", GENERIC_ARCHS)
def test_generic_architecture_matches_transformers(arch, generic_dirs):
    _parity(generic_dirs[arch], 8)


@pytest.mark.slow
def test_llama_forced_through_generic_path(parity_llama_dir):
    llm = _parity(parity_llama_dir, 16, model_impl="transformers")
    from prometheus_client import generate_latest

    from presso.server.metrics.registry import ServerMetrics

    text = generate_latest(ServerMetrics("tiny", llm.engine).registry).decode()
    assert 'presso_model_info{model_impl="generic",model_name="tiny",model_type="llama"} 1.0' in text


def test_native_model_reports_native_impl(parity_llama_dir):
    core = EngineCore(EngineConfig(model=parity_llama_dir, kv_cache_memory="8MiB"))
    assert core.stats().model_impl == "native"


def test_generic_attention_on_int8_kv_codec(generic_dirs):
    """A compressed KV codec works through the generic path: int8 pages, logits close to fp32 pages."""
    prompt = list(range(3, 90))
    logits = {}
    for codec in ("fp32", "int8"):
        core = EngineCore(EngineConfig(model=generic_dirs["olmo2"], dtype="float32", kv_cache_dtype=codec,
                                       kv_cache_memory="8MiB", block_size=4))
        assert core.kv.codec_name == codec
        logits[codec] = core.prompt_logits(prompt)
    ref, got = logits["fp32"], logits["int8"]
    assert not torch.equal(ref, got)  # int8 pages really changed what attention read
    assert float(10 * torch.log10(ref.pow(2).sum() / (ref - got).pow(2).sum())) > 30


def test_quantized_generic_keeps_packed_linears(generic_dirs, tmp_path):
    """compressed-tensors int4 g32 on an architecture presso lacks: nn.Linear modules become presso's
    PackedIntLinear (weights stay packed) and fp32 logits match the dequantized transformers reference."""
    pytest.importorskip("compressed_tensors")
    from ct_checkpoint import quantize_rtn
    from test_quantized import PROMPT, reference_logits, sqnr_db

    from presso.server.layers.linear import PackedIntLinear

    base = generic_dirs["olmo2"]
    int4 = quantize_rtn(base, tmp_path / "int4", bits=4, group_size=32, symmetric=False)
    core = EngineCore(EngineConfig(model=int4, dtype="float32", kv_cache_memory="8MiB", lm_head_quant="none"))
    packed = [n for n, m in core.model.named_modules() if isinstance(m, PackedIntLinear)]
    assert len(packed) == 2 * 7  # q, k, v, o, gate, up, down per layer; lm_head is ignored (dense)
    assert core.stats().bits_per_weight < 16
    assert sqnr_db(reference_logits(int4, base), core.prompt_logits(PROMPT)) > 80


def test_native_only_refuses_unknown_family(generic_dirs):
    with pytest.raises(ValueError, match="model_type 'olmo2' is not supported"):
        EngineCore(EngineConfig(model=generic_dirs["olmo2"], kv_cache_memory="8MiB", model_impl="native"))


def test_encoder_decoder_is_refused_in_one_line(tmp_path, capsys):
    from conftest import build_tokenizer
    from transformers import T5Config, T5ForConditionalGeneration

    from presso.server.cli import main

    tok = build_tokenizer(tmp_path)
    config = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    T5ForConditionalGeneration(config).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(ValueError, match="'t5' is an encoder-decoder model"):
        EngineCore(EngineConfig(model=tmp_path, kv_cache_memory="8MiB"))
    capsys.readouterr()  # drop save_pretrained's progress bar
    assert main(["serve", "--model", str(tmp_path), "--kv-cache-memory", "8MiB"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("presso: error: config.json model_type 't5' is an encoder-decoder model")
    assert "\n" not in err


def test_bench_impl_json(cli, parity_llama_dir):
    """`presso bench impl` measures both paths on one model and reports their ratio."""
    import json

    out = cli("bench", "impl", "--model", str(parity_llama_dir), "--batches", "1,3", "--tokens", "4",
              "--prompt-len", "8", "--repeats", "1", "--kv-cache-memory", "16MiB", "--threads", "1", "--json",
              timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)["rows"]
    assert [r["batch"] for r in rows] == [1, 3]
    for r in rows:
        assert r["native_tokens_per_s"] > 0 and r["transformers_tokens_per_s"] > 0
        assert r["ratio_aggregate"] == r["transformers_tokens_per_s"] / r["native_tokens_per_s"]
    assert "runs on the generic path" in out.stderr  # the load-time warning names the path


def test_pre_rope_kv_codebooks_are_refused(kv_prerope_dir):
    """transformers' code rotates keys inside attention, so codebooks of pre-RoPE keys cannot be used."""
    with pytest.raises(ValueError, match="before RoPE.*generic path"):
        EngineCore(EngineConfig(model=kv_prerope_dir, kv_cache_dtype="rvq", kv_cache_memory="8MiB",
                                model_impl="transformers"))


def test_soft_capped_attention_is_refused(tmp_path):
    """Gemma 2's attention logit soft-capping is not in presso's paged attention: refused at load."""
    from conftest import build_tokenizer
    from transformers import AutoModelForCausalLM, Gemma2Config

    tok = build_tokenizer(tmp_path)
    config = Gemma2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, attn_logit_softcapping=50.0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(ValueError, match="soft-capping"):
        EngineCore(EngineConfig(model=tmp_path, kv_cache_memory="8MiB", model_impl="transformers"))


def test_sliding_window_caps_the_context(tmp_path):
    """Full attention over the paged cache equals Mistral's sliding window only within it: the generic path
    caps max_model_len at the window and matches transformers up to there (finish reason `length`)."""
    from conftest import build_tokenizer
    from test_greedy_parity import _hf_greedy
    from transformers import AutoModelForCausalLM, MistralConfig

    tok = build_tokenizer(tmp_path)
    config = MistralConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=24, initializer_range=0.3,
                           max_position_embeddings=512, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path, safe_serialization=True)
    llm = LLM(tmp_path, dtype="float32", block_size=4, kv_cache_memory="8MiB", model_impl="transformers")
    assert llm.engine.max_model_len == 24
    prompt = list(range(3, 19))  # 16 tokens: 8 more fit the window
    (out,) = llm.generate([prompt], SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True))
    assert out.finish_reason == "length" and len(out.token_ids) == 8
    assert out.token_ids == _hf_greedy(tmp_path, [prompt], 8)[0]
    with pytest.raises(ValueError, match="24"):
        llm.generate([list(range(3, 30))], SamplingParams(max_tokens=1))
