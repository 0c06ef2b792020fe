"""Compression finds the decoder layers and Linears of every family (Qwen3, Phi-3's fused Linears, SmolLM3,
Mistral, Gemma 2, Gemma 3 text and multimodal) and each method runs on them: RTN, GPTQ, AWQ (with the smoothing
pairs found by data flow, never Gemma's sandwich norms), SparseGPT and Wanda; pre-RoPE keys for KV codebooks
come from each family's own key source."""

from __future__ import annotations

import pytest
import torch
from family_models import COMPRESS_FAMILIES, build_family_model

from presso.compression.calibration import calibration_windows, quantize_model
from presso.compression.calibration.layers import decoder_layers, decoder_linears
from presso.compression.eval import loader
from presso.compression.kv_rvq.collect import collect_kv
from presso.compression.recipes import load_recipe, resolve_plan

METHODS = ("w4g64", "gptq-w4g64", "awq-w4g64", "sparsegpt-50", "wanda-50")


@pytest.fixture(scope="module", params=COMPRESS_FAMILIES)
def family(request, tmp_path_factory):
    return request.param, build_family_model(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def windows(family, sample_text_file):
    return calibration_windows(loader.load_tokenizer(family[1]), str(sample_text_file), 4, 48)


def _logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits.float()


def test_decoder_layers_and_linears_are_found(family):
    name, model_dir = family
    model = loader.load_model(model_dir)
    prefix, layers = decoder_layers(model)
    assert len(layers) == 2
    assert prefix == ("model.language_model.layers" if name == "gemma3" else "model.layers")  # not the vision tower
    linears = decoder_linears(model)
    per_layer = 4 if name == "phi3" else 7  # fused qkv_proj and gate_up_proj
    assert len(linears) == 2 * per_layer
    plans = resolve_plan(load_recipe("gptq-w4g64"), model)
    assert {p.name for p in plans} == set(linears)  # no embedding, head or vision Linear targeted


@pytest.mark.parametrize("recipe", METHODS)
def test_method_runs_on_every_decoder_linear(family, windows, recipe):
    name, model_dir = family
    model = loader.load_model(model_dir)
    ids = windows[:2]
    dense = _logits(model, ids)
    result = quantize_model(model, resolve_plan(load_recipe(recipe), model), windows, batch_size=2, progress=False)
    assert {q.plan.name for q in result.layers} == set(decoder_linears(model))
    assert all(q.calib_tokens > 0 for q in result.layers)
    got = _logits(model, ids)
    assert torch.isfinite(got).all()
    if recipe.endswith("-50"):  # pruned: half of every Linear's weights are exactly zero
        modules = dict(model.named_modules())
        for q in result.layers:
            assert q.sparsity == pytest.approx(0.5, abs=0.01)
            assert torch.equal(modules[q.plan.name].weight == 0, ~q.mask)
        return
    sqnr = float(10 * torch.log10(dense.pow(2).sum() / (dense - got).pow(2).sum()))
    assert 3.0 < sqnr < 60.0, sqnr  # changed (really quantized), not destroyed
    if recipe.startswith("awq"):
        _check_awq_pairs(name, result.prepare)


def _check_awq_pairs(name: str, prepare: dict) -> None:
    """The folds AWQ made in layer 0: which op balanced which Linears, none undone by the output check."""
    folds = next(v for k, v in prepare.items() if ".0." in k)
    assert not any("skipped" in f for f in folds.values()), folds
    got = {op: tuple(f["balanced"]) for op, f in folds.items()}
    qkv = ("self_attn.k_proj", "self_attn.q_proj", "self_attn.v_proj")
    if name == "phi3":  # fused rows: the up half of gate_up_proj feeds down_proj; GQA keeps qkv -> o out
        expected = {"input_layernorm": ("self_attn.qkv_proj",),
                    "post_attention_layernorm": ("mlp.gate_up_proj",), "mlp.gate_up_proj": ("mlp.down_proj",)}
    elif name.startswith("gemma"):  # 1 + weight norms; the post-attention sandwich norm feeds no Linear
        expected = {"input_layernorm": qkv, "pre_feedforward_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
                    "mlp.up_proj": ("mlp.down_proj",)}
    else:
        expected = {"input_layernorm": qkv, "post_attention_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
                    "mlp.up_proj": ("mlp.down_proj",)}
    assert got == expected


def test_awq_folds_keep_the_model_function(family, windows):
    """AWQ's scaling alone (before rounding) leaves the logits unchanged, Gemma's 1 + weight norms included."""
    from presso.compression.calibration.capture import capture_layer_inputs
    from presso.compression.methods.awq import AwqParams, prepare_awq
    from presso.compression.methods.grid import GridSpec
    from presso.compression.methods.registry import LayerContext

    _, model_dir = family
    model = loader.load_model(model_dir)
    dense = _logits(model, windows)
    _, layers = decoder_layers(model)
    batch = capture_layer_inputs(model, windows, 4)[0]
    layer = layers[0]
    linears = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
    ctx = LayerContext(layer, linears, {n: GridSpec(3, 16, False) for n in linears},
                       lambda: layer(batch.hidden, **batch.kwargs), 1)
    folds = prepare_awq(ctx, AwqParams(grid=4))
    assert folds and any(f["alpha"] > 0 for f in folds.values())  # real, non-identity scales were folded
    assert torch.allclose(_logits(model, windows), dense, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ["qwen3", "phi3", "smollm3"])
def test_pre_rope_keys_rotate_to_the_cached_keys(name, tmp_path):
    """Keys taken from each family's key source (Qwen3's k_norm, Phi-3's fused qkv rows, k_proj), rotated by
    the model's own RoPE, equal the post-RoPE keys of its KV cache (NoPE layers: equal as they are)."""
    import importlib

    model_dir = build_family_model(tmp_path / name, name)
    model = loader.load_model(model_dir)
    ids = torch.randint(3, 300, (1, 40), generator=torch.Generator().manual_seed(0))
    pre, _ = collect_kv(model, ids, "pre_rope", progress=False)
    post, _ = collect_kv(model, ids, "post_rope", progress=False)
    rotate = importlib.import_module(f"transformers.models.{name}.modeling_{name}").apply_rotary_pos_emb
    cos, sin = model.model.rotary_emb(pre[0], torch.arange(40)[None])  # (1, L, rot)
    for i, (k_pre, k_post) in enumerate(zip(pre, post, strict=True)):
        k = k_pre.transpose(0, 1)[None]  # (1, Hkv, L, D)
        uses_rope = name != "smollm3" or model.config.no_rope_layers[i]
        rotated = rotate(k, k, cos, sin)[0] if uses_rope else k
        assert torch.allclose(rotated[0].transpose(0, 1), k_post, atol=1e-5), (name, i)


def test_layer_by_layer_replay_reproduces_the_model(family, windows):
    """Replaying each decoder layer on the previous one's output, with the arguments captured for *that*
    layer, gives transformers' own hidden states: Gemma's sliding-window masks (window 32 < 48 tokens here)
    and Gemma 3's local RoPE base reach the right layers."""
    from presso.compression.calibration.capture import capture_layer_inputs, layer_output

    name, model_dir = family
    model = loader.load_model(model_dir)
    with torch.inference_mode():
        expected = model(input_ids=windows, output_hidden_states=True).hidden_states  # (layers + 1) x (B, L, H)
    _, layers = decoder_layers(model)
    batches = capture_layer_inputs(model, windows, 2)
    assert all(bool(b.per_layer) == name.startswith("gemma") for b in batches)  # Llama-like: stop at layer 0
    final_norm = model.get_decoder().norm  # transformers' last hidden state is after the final norm
    for i, layer in enumerate(layers):
        with torch.inference_mode():
            outs = [layer_output(layer(b.hidden, **b.kwargs)) for b in batches]  # each (B, L, H)
            got = torch.cat(outs) if i + 1 < len(layers) else final_norm(torch.cat(outs))
        torch.testing.assert_close(got, expected[i + 1], rtol=1e-4, atol=1e-4)
        if i + 1 < len(layers):
            batches = [b.advance(out) for b, out in zip(batches, outs, strict=True)]
