"""Which decoder layers attend through a sliding window, and how wide, from a HF config.json.

Returns one int per layer: W (a query at t sees keys t - W < s <= t) or 0 for full attention. The KV
cache hands each layer its window (server/kv/cache.py) and the scheduler frees out-of-window blocks when
every layer has one (server/engine/scheduler.py). Config conventions, as transformers reads them:
- `layer_types` ("sliding_attention" / "full_attention"), with `sliding_window` (Gemma 2/3, Qwen2, newer
  configs of any family);
- Gemma 3 configs without it: `sliding_window_pattern` P, every P-th layer global (default 6);
  Gemma 2: alternating, layer 0 sliding;
- Qwen2 configs without it: `use_sliding_window` and `max_window_layers` (layers from there on slide);
- otherwise a set `sliding_window` applies to every layer (Mistral).
"""

from __future__ import annotations


def layer_types(cfg: dict) -> list[str]:
    """'sliding_attention' or 'full_attention' per layer."""
    n = cfg["num_hidden_layers"]
    if cfg.get("layer_types"):
        types = list(cfg["layer_types"])
        if len(types) != n:
            raise ValueError(f"config.json layer_types has {len(types)} entries for {n} layers")
        return types
    kind = cfg.get("model_type")
    if kind in ("gemma3", "gemma3_text"):
        pattern = cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern") or 6
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    if kind == "gemma2":
        return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    if kind == "qwen2":
        if not cfg.get("use_sliding_window"):
            return ["full_attention"] * n
        start = cfg.get("max_window_layers", n)
        return ["sliding_attention" if i >= start else "full_attention" for i in range(n)]
    return ["sliding_attention" if cfg.get("sliding_window") else "full_attention"] * n


def sliding_windows(cfg: dict) -> list[int]:
    """W per layer (0: full attention)."""
    window = cfg.get("sliding_window") or 0
    types = layer_types(cfg)
    unknown = set(types) - {"sliding_attention", "full_attention"}
    if unknown:
        raise ValueError(f"config.json layer_types {sorted(unknown)} are not supported "
                         "(supported: sliding_attention, full_attention)")
    if window < 0 or (not window and "sliding_attention" in types):
        raise ValueError(f"config.json has sliding_attention layers but sliding_window is "
                         f"{cfg.get('sliding_window')!r}")
    return [window if t == "sliding_attention" else 0 for t in types]
