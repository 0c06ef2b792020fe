"""`presso kv-calibrate`: RVQ KV codebooks for a model whose weights stay as they are.

model dir (dense or any checkpoint) + calibration spec (default `mix`) -> the first KV_CALIB_WINDOWS windows
of that spec -> calibrate_rvq (the same code and windows as `presso compress --kv`) -> a new directory OUT
holding symlinks to every file of the model dir plus `presso_kv.safetensors`, so `presso eval --kv-cache rvq`
and `presso serve` score/serve the unchanged weights with the codec. Smaller codebooks: a spec with fewer
stages is the prefix of a larger fit (residual k-means fits stage s on the residual of stages < s), so
`truncate_stages` writes S' < S from one calibration without refitting.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.kv_codebooks import KV_FILE, LayerCodebooks, RVQSpec, save_kv_codebooks
from presso.compression.kv_rvq.stage import KV_CALIB_WINDOWS


def _fresh(out: Path) -> None:
    if out.exists():
        raise PressoInputError(f"--out {out} already exists")


def _link_model(model_dir: Path, out: Path) -> None:
    _fresh(out)
    out.mkdir(parents=True)
    for item in sorted(model_dir.iterdir()):
        if item.name != KV_FILE:
            (out / item.name).symlink_to(item.resolve())


def calibrate_beside(model_dir: Path, out: Path, spec: RVQSpec, calib: str = "mix", length: int = 512,
                     seed: int = 0, progress: bool = False) -> dict:
    """Calibrate on KV_CALIB_WINDOWS windows of `calib` and write OUT; returns the codebooks' report."""
    from presso.compression.calibration import calibration_windows
    from presso.compression.eval import loader
    from presso.compression.kv_rvq.calibrate import calibrate_rvq

    _fresh(out)  # before the slow part
    tokenizer = loader.load_tokenizer(model_dir)
    model = loader.load_model(model_dir, "float32")
    windows = calibration_windows(tokenizer, calib, KV_CALIB_WINDOWS, length, seed)  # (16, L) int64
    spec, layers, report = calibrate_rvq(model, windows, spec, progress=progress)
    _link_model(model_dir, out)
    save_kv_codebooks(out, spec, layers, {**report, "calib": calib, "calib_seed": seed})
    return report


def truncate_stages(src: Path, model_dir: Path, out: Path, stages: int) -> RVQSpec:
    """OUT = model_dir's files + the first `stages` stages of src's codebooks."""
    from presso.compression.checkpoint.kv_codebooks import load_kv_codebooks

    spec, layers = load_kv_codebooks(src)
    if not 1 <= stages <= spec.stages:
        raise PressoInputError(f"--stages must be in 1..{spec.stages} (the codebooks in {src}), got {stages}")
    cut = [LayerCodebooks(x.k_books[:stages], x.k_perm, x.v_books[:stages], x.v_perm) for x in layers]
    spec = replace(spec, stages=stages)
    _link_model(model_dir, out)
    save_kv_codebooks(out, spec, cut, {"truncated_from": str(src), "stages": stages})
    return spec
