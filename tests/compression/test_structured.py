"""Structured pruning (whole q heads and MLP channels): budgets, recipe errors, shapes/config of the
written checkpoint, and that transformers and presso's engine run the pruned model identically."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.quantize import CompressOptions, compress
from presso.compression.recipes import load_recipe
from presso.compression.structured import Structured, structured_budget

SMOLLM2 = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3,
           "head_dim": 64}


@pytest.mark.parametrize("ratio,heads,n_heads,inter", [
    (0.1, False, 9, 1344), (0.2, False, 9, 1152), (0.3, False, 9, 896), (0.2, True, 6, 1280), (0.3, True, 6, 1024),
])
def test_smollm2_budgets_are_gqa_valid_and_near_the_ratio(ratio, heads, n_heads, inter):
    b = structured_budget(Structured(ratio=ratio, heads=heads), SMOLLM2)
    assert (b.num_heads, b.num_kv_heads, b.head_dim, b.intermediate) == (n_heads, 3, 64, inter)
    assert b.num_heads % b.num_kv_heads == 0 and b.intermediate % 64 == 0
    assert abs(b.achieved_ratio - ratio) < 0.025  # whole 64-channel blocks: within one block of the target


def test_heads_only_and_explicit_heads_per_group():
    b = structured_budget(Structured(ratio=0.1, heads=True, mlp=False), SMOLLM2)
    assert (b.num_heads, b.intermediate) == (3, 1536)  # 2 of 3 q heads per KV group: 12.5 % of the weights
    with pytest.raises(PressoInputError, match="structured.ratio"):
        structured_budget(Structured(ratio=0.2, heads=True, mlp=False), SMOLLM2)
    with pytest.raises(PressoInputError, match="structured.heads_per_group"):
        structured_budget(Structured(ratio=0.2, heads=True, heads_per_group=3), SMOLLM2)


@pytest.mark.parametrize("body,field", [
    ("structured: {ratio: 1.5}", "structured.ratio"),
    ("structured: {ratio: 0}", "structured.ratio"),
    ("structured: {ratio: 0.2, mlp: false}", "structured"),
    ("structured: {ratio: 0.2, heads_per_group: 1}", "structured"),
    ("structured: {ratio: 0.2, colour: red}", "structured.colour"),
    ("name: x", "steps"),
])
def test_bad_recipes_name_the_field(tmp_path, body, field):
    path = tmp_path / "r.yaml"
    path.write_text(body + "\n")
    with pytest.raises(PressoInputError, match=rf"recipe {path}: {field}:"):
        load_recipe(str(path))


def test_presets_and_structured_only_recipes_are_valid():
    for p in (10, 20, 30):
        recipe = load_recipe(f"structured-{p}")
        assert recipe.structured.ratio == p / 100 and recipe.steps == []


def _peaked_llama(out):
    """Like tests/conftest's tiny Llama but with 3 q heads per KV head and a larger init (peaked logits,
    so greedy parity is meaningful)."""
    import sys
    from pathlib import Path

    from transformers import AutoModelForCausalLM, LlamaConfig

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import build_tokenizer

    tok = build_tokenizer(out)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=96, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, head_dim=16, initializer_range=0.3,
                         max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, sample_text_file):
    base = _peaked_llama(tmp_path_factory.mktemp("base"))
    recipe = tmp_path_factory.mktemp("r") / "r.yaml"
    recipe.write_text("structured: {ratio: 0.3, heads: true, mlp: true, channel_multiple: 32}\n")
    out = tmp_path_factory.mktemp("o") / "pruned"
    report = compress(CompressOptions(base, str(recipe), out, calib=str(sample_text_file), calib_samples=8,
                                      calib_len=64, progress=False))
    return base, out, report


def test_pruned_checkpoint_has_the_requested_shapes(pruned):
    base, out, report = pruned
    b = structured_budget(Structured(ratio=0.3, heads=True, channel_multiple=32),
                          json.loads((base / "config.json").read_text()))
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"]) \
        == (b.num_heads, 2, 16, b.intermediate) == (4, 2, 16, 160)
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    for i in range(2):
        p = f"model.layers.{i}"
        assert shapes[f"{p}.self_attn.q_proj.weight"] == [64, 96] and shapes[f"{p}.self_attn.o_proj.weight"] == [96, 64]
        assert shapes[f"{p}.self_attn.k_proj.weight"] == [32, 96] and shapes[f"{p}.mlp.gate_proj.weight"] == [160, 96]
        assert shapes[f"{p}.mlp.down_proj.weight"] == [96, 160]
    s = report["structured"]
    assert s["parameters"]["after"] < s["parameters"]["before"] == report["parameters"]["total"]
    for layer in s["layers"]:
        heads = layer["kept_heads"]
        assert len(heads) == 4 and sorted(h // 3 for h in heads) == [0, 0, 1, 1]  # 2 kept per KV group
        assert len(layer["kept_channels"]) == 160 and layer["output_sqnr_db"]["down_proj"] > 0
    assert report["bytes"]["original_fp32"] == 4 * s["parameters"]["before"]  # sizes vs the ORIGINAL model


def test_engine_and_transformers_agree_on_the_pruned_model(pruned):
    from transformers import AutoModelForCausalLM

    from presso.server.engine import LLM, SamplingParams

    _, out, _ = pruned
    prompts = [list(range(3, 40)), list(range(50, 70))]
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    expected = []
    for p in prompts:
        seq = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                             max_new_tokens=24, do_sample=False, pad_token_id=0)
        expected.append(tuple(seq[0, len(p):].tolist()))
    llm = LLM(out, dtype="float32", block_size=4, num_kv_blocks=64, max_num_seqs=2, max_num_batched_tokens=64)
    got = [o.token_ids for o in llm.generate(prompts, SamplingParams(max_tokens=24, temperature=0.0))]
    assert got == expected
    assert len({t for e in expected for t in e}) > 5  # not a degenerate repetition


def test_compensation_lowers_the_output_error(pruned, sample_text_file):
    """Layer 0 sees the same inputs either way: the least-squares update must beat plain removal there."""
    from transformers import AutoModelForCausalLM

    from presso.compression.structured.prune import prune_structured

    base, _, _ = pruned
    windows = torch.randint(3, 300, (4, 48), generator=torch.Generator().manual_seed(0))
    sqnr = {}
    for compensate in (False, True):
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        spec = Structured(ratio=0.3, heads=True, compensate=compensate, channel_multiple=32)
        sqnr[compensate] = prune_structured(model, spec, windows, 2, progress=False).output_sqnr_db[0]
    assert sqnr[True]["o_proj"] > sqnr[False]["o_proj"] and sqnr[True]["down_proj"] > sqnr[False]["down_proj"]
