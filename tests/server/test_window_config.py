"""Which layers slide and which RoPE each Gemma layer type uses, read from configs old and new (no model)."""

from __future__ import annotations

import pytest
import torch

from presso.server.layers.rotary import inv_frequencies
from presso.server.models.gemma import rope_configs
from presso.server.models.windows import sliding_windows


@pytest.mark.parametrize("cfg,want", [
    ({"model_type": "mistral", "num_hidden_layers": 3, "sliding_window": 8}, [8, 8, 8]),
    ({"model_type": "mistral", "num_hidden_layers": 2, "sliding_window": None}, [0, 0]),
    ({"model_type": "llama", "num_hidden_layers": 2}, [0, 0]),
    ({"model_type": "gemma2", "num_hidden_layers": 4, "sliding_window": 16}, [16, 0, 16, 0]),
    ({"model_type": "gemma3_text", "num_hidden_layers": 7, "sliding_window": 16, "sliding_window_pattern": 3},
     [16, 16, 0, 16, 16, 0, 16]),
    ({"model_type": "qwen2", "num_hidden_layers": 3, "sliding_window": 4096, "use_sliding_window": False},
     [0, 0, 0]),
    ({"model_type": "qwen2", "num_hidden_layers": 4, "sliding_window": 8, "use_sliding_window": True,
      "max_window_layers": 2}, [0, 0, 8, 8]),
    ({"model_type": "gemma3_text", "num_hidden_layers": 2, "sliding_window": 5,
      "layer_types": ["full_attention", "sliding_attention"]}, [0, 5]),
])
def test_sliding_windows_from_config(cfg, want):
    assert sliding_windows(cfg) == want


def test_bad_layer_types_are_refused():
    with pytest.raises(ValueError, match="chunked_attention"):
        sliding_windows({"num_hidden_layers": 1, "sliding_window": 4, "layer_types": ["chunked_attention"]})
    with pytest.raises(ValueError, match="sliding_window is None"):
        sliding_windows({"num_hidden_layers": 1, "sliding_window": None, "layer_types": ["sliding_attention"]})


def test_gemma3_rope_bases_old_and_new_configs_agree():
    """Pre-5.x configs (rope_theta + rope_scaling global, rope_local_base_freq local) and transformers 5's
    rope_parameters per layer type give the same frequencies."""
    old = {"model_type": "gemma3_text", "head_dim": 32, "rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0,
           "rope_scaling": {"rope_type": "linear", "factor": 8.0}}
    new = {"model_type": "gemma3_text", "head_dim": 32, "rope_parameters": {
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}}}
    for kind in ("full_attention", "sliding_attention"):
        a, b = inv_frequencies(rope_configs(old)[kind], 32)[0], inv_frequencies(rope_configs(new)[kind], 32)[0]
        torch.testing.assert_close(a, b)
    full, local = (inv_frequencies(rope_configs(new)[k], 32)[0] for k in ("full_attention", "sliding_attention"))
    assert float(full[1]) == pytest.approx(1e6 ** (-2 / 32) / 8) and float(local[1]) == pytest.approx(1e4 ** (-2 / 32))
