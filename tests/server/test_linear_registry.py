"""DESIGN contract 2: the linear methods registry covers exactly the codecs the checkpoint reader accepts;
the reader maps compressed-tensors / AQLM configs to codecs and refuses unsupported ones by field name."""

from __future__ import annotations

import pytest

from presso.server.layers.linear import LINEAR_METHODS, make_linear
from presso.server.layers.quant_config import ACCEPTED_CODECS, LinearSpec, QuantConfig

CT = {
    "quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
    "config_groups": {"group_0": {"targets": ["Linear"], "format": "pack-quantized", "weights": {
        "num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 64}}},
}


def test_registry_names_equal_accepted_codecs():
    assert set(LINEAR_METHODS) == set(ACCEPTED_CODECS)


def test_compressed_tensors_specs():
    qc = QuantConfig(CT)
    assert qc.spec_for("model.layers.0.mlp.up_proj") == LinearSpec("int4", 4, 64, False)
    assert qc.spec_for("lm_head").codec == "dense"
    assert QuantConfig(None).spec_for("x").codec == "dense"
    sparse = {"quant_method": "compressed-tensors", "config_groups": {},
              "sparsity_config": {"format": "sparse-24-bitmask", "targets": ["Linear"], "ignore": ["lm_head"]}}
    assert QuantConfig(sparse).spec_for("model.layers.0.mlp.up_proj").codec == "sparse-24-bitmask"
    aqlm = {"quant_method": "aqlm", "num_codebooks": 2, "nbits_per_codebook": 8, "in_group_size": 8,
            "out_group_size": 1, "linear_weights_not_to_quantize": ["lm_head.weight"]}
    assert QuantConfig(aqlm).spec_for("model.layers.0.mlp.up_proj").codec == "aqlm"
    assert QuantConfig(aqlm).spec_for("lm_head").codec == "dense"


@pytest.mark.parametrize("bad,field", [
    ({"quant_method": "gptq"}, "quant_method"),
    ({**CT, "config_groups": {"g": {"weights": {"num_bits": 4, "type": "float"}}}}, "config_groups.g"),
    ({**CT, "config_groups": {"g": {"format": "naive-quantized", "weights": {"num_bits": 4}}}}, "format"),
    ({**CT, "config_groups": {"g": {"weights": {"num_bits": 4, "strategy": "block"}}}}, "strategy"),
])
def test_unsupported_configs_name_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        QuantConfig(bad)


def test_make_linear_unknown_codec():
    import torch

    with pytest.raises(ValueError, match="no linear method"):
        make_linear(["x"], 4, [4], False, LinearSpec("int1"), torch.float32)


def test_decode_layout_keeps_values_and_shape():
    """Wide fp32 weights are re-laid column-major for batch-1 speed; values, shape and F.linear are unchanged."""
    import torch

    from presso.server.layers.linear import decode_layout

    wide, tall = torch.randn(96, 32), torch.randn(32, 96)
    x = torch.randn(3, 32)
    laid = decode_layout(wide)
    assert laid.shape == wide.shape and torch.equal(laid, wide) and laid.stride() == (1, 96)
    assert torch.allclose(torch.nn.functional.linear(x, laid), x @ wide.t(), atol=1e-5)
    assert decode_layout(tall).stride() == (96, 1)
    assert decode_layout(wide.bfloat16()).stride() == (32, 1)
    assert decode_layout(laid).data_ptr() == laid.data_ptr()  # idempotent, no copy
