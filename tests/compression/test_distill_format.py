"""`presso distill` keeps the checkpoint format: same tensors, shapes, dtypes, codes and masks; loads everywhere.

Tiny random Llama checkpoints in each format presso writes (pack-quantized asymmetric, 2:4 sparse bitmask,
2:4 + 4-bit, unstructured bitmask, AQLM 2x8) are distilled for a few steps against the dense original.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from presso.compression.distill import DistillOptions, TrainConfig, distill
from presso.compression.distill.student import load_student
from presso.compression.eval import loader
from presso.compression.quantize import CompressOptions, compress

ASYM = "steps:\n  - {method: rtn, bits: 4, group_size: 32, symmetric: false}\n"
AQLM = "steps:\n  - {method: aqlm, params: {scheme: 2x8, rounds: 1, kmeans_iters: 2, cg_iters: 2}}\n"
RECIPES = {"asym-w4g32": ASYM, "wanda-2of4": "wanda-2of4", "sparsegpt-2of4-w4g64": "sparsegpt-2of4-w4g64",
           "wanda-50": "wanda-50", "aqlm-2x8": AQLM}
# tensors that must come back bit-identical: the discrete part of each format (+ embeddings)
FROZEN = (".weight_packed", ".weight_shape", ".codes", ".bitmask", ".shape", ".row_offsets", "embed_tokens.weight")
TRAINED = (".weight_scale", ".scales", ".codebooks", ".compressed", "norm.weight")
CFG = TrainConfig(steps=3, batch_size=2, seq_len=32, lr=2e-2, temperature=2.0, hidden_weight=0.5, seed=1)


@pytest.fixture(scope="module")
def checkpoints(tiny_llama_dir, sample_text_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    made = {}
    for name, recipe in RECIPES.items():
        src = root / name
        if "\n" in recipe:  # a YAML recipe, not a preset
            (root / f"{name}.yaml").write_text(recipe)
            recipe = str(root / f"{name}.yaml")
        compress(CompressOptions(model_dir=tiny_llama_dir, recipe=recipe, out=src, calib=str(sample_text_file),
                                 calib_samples=4, calib_len=32, progress=False))
        out = root / f"{name}-kd"
        distill(DistillOptions(src, tiny_llama_dir, out, str(sample_text_file), CFG, progress=False))
        made[name] = (src, out)
    return made


def _tensors(directory):
    with safe_open(str(directory / "model.safetensors"), "pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}


@pytest.mark.parametrize("name", list(RECIPES))
def test_kd_keeps_names_shapes_dtypes_codes_and_size(checkpoints, name):
    src, out = checkpoints[name]
    before, after = _tensors(src), _tensors(out)
    assert list(before) == list(after)
    assert {k: (v.shape, v.dtype) for k, v in before.items()} == {k: (v.shape, v.dtype) for k, v in after.items()}
    for key in before:
        if key.endswith(FROZEN):
            assert torch.equal(before[key], after[key]), key
    changed = [k for k in before if k.endswith(TRAINED) and not torch.equal(before[k], after[k])]
    assert changed, "KD trained nothing"
    assert (src / "model.safetensors").stat().st_size == (out / "model.safetensors").stat().st_size
    assert json.loads((src / "config.json").read_text()) == json.loads((out / "config.json").read_text())
    meta = json.loads((out / "presso.json").read_text())
    assert meta["format_version"] == 1 and meta["distill"]["steps"] == 3
    report = json.loads((out / "report.json").read_text())
    assert report["distill"]["steps"] == 3 and len(report["distill"]["loss"]["curve"]) == 3


def test_asymmetric_zero_points_stay_on_the_grid(checkpoints):
    src, out = checkpoints["asym-w4g32"]
    student = load_student(out)
    zeros = [m.zero for m in student.modules.values()]
    assert zeros and all(torch.equal(z, z.round()) and z.min() >= -8 and z.max() <= 7 for z in zeros)


def _dense_weights(directory) -> dict[str, torch.Tensor]:
    model = loader.load_model(directory)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]))  # compressed-tensors decompresses on the first forward
    return dict(model.named_parameters())


@pytest.mark.parametrize("name", ["wanda-2of4", "sparsegpt-2of4-w4g64", "wanda-50"])
def test_sparsity_mask_is_intact_after_kd(checkpoints, name):
    src, out = checkpoints[name]
    dense_before, dense_after = _dense_weights(src), _dense_weights(out)
    pruned = [k for k in dense_before if ".layers." in k and k.endswith("proj.weight")]
    assert len(pruned) == 14
    for key in pruned:
        zero_before, zero_after = dense_before[key] == 0, dense_after[key] == 0
        assert zero_before.float().mean() >= 0.5, key
        assert torch.equal(zero_before, zero_after), key
        if "2of4" in name:
            assert (~zero_after).reshape(-1, 4).sum(1).max() <= 2, key


@pytest.mark.parametrize("name", list(RECIPES))
def test_exported_checkpoint_reproduces_the_trained_student(checkpoints, name, tiny_llama_dir):
    """The written files, loaded by `presso eval`'s loader, give the trained student's logits (AQLM:
    up to its fp16 codebooks); the student reloaded from them has the discrete part unchanged."""
    src, out = checkpoints[name]
    ids = torch.randint(0, 300, (1, 24), generator=torch.Generator().manual_seed(3))
    reloaded = load_student(out)
    with torch.no_grad():
        ours = reloaded.model(ids).logits
        theirs = loader.load_model(out)(ids).logits
        original = loader.load_model(src)(ids).logits
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(theirs, original, atol=1e-6)


@pytest.mark.parametrize("name", ["asym-w4g32", "sparsegpt-2of4-w4g64", "wanda-2of4", "aqlm-2x8"])
def test_presso_engine_serves_the_distilled_checkpoint(checkpoints, name):
    from presso.server.engine.config import EngineConfig
    from presso.server.engine.core import EngineCore

    _, out = checkpoints[name]
    prompt = list(range(3, 30))
    core = EngineCore(EngineConfig(model=out, dtype="float32", kv_cache_memory="8MiB", lm_head_quant="none"))
    engine = core.prompt_logits(prompt)
    with torch.inference_mode():
        ref = loader.load_model(out)(torch.tensor([prompt])).logits[0]
    torch.testing.assert_close(engine[-1], ref[-1], atol=2e-3, rtol=2e-3)
