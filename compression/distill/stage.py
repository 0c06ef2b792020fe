"""KD as the last stage of `presso compress` (a recipe's `distill:` block), run on the written checkpoint.

compress() exports into its temp dir, then calls `distill_in_place(tmp, source, spec, calib, eval)`: the
checkpoint there is loaded as a student, trained against the dense source, and its safetensors files are
rewritten in place with the same tensor names, shapes and dtypes. Returns report.json's `distill` block.
"""

from __future__ import annotations

import time
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.distill.export import trained_tensors, write_tensors
from presso.compression.distill.records import loss_summary
from presso.compression.distill.run import fit
from presso.compression.distill.spec import DistillSpec


def check_spec(spec: DistillSpec, calib: str | None, eval_text: str | None) -> str:
    """-> the training text; refuses a missing one or the eval text (checked before any quantization)."""
    text = spec.text or calib
    if text is None:
        raise PressoInputError("recipe distill: needs a training text: set distill.text or pass --calib")
    if eval_text is not None and text.strip() == eval_text.strip():
        raise PressoInputError(f"recipe distill.text {text!r} is the --eval text: KD must not be evaluated on it")
    return text


def distill_in_place(checkpoint: Path, teacher: Path, spec: DistillSpec, calib: str | None, eval_text: str | None,
                     progress: bool = True) -> dict:
    text = check_spec(spec, calib, eval_text)
    start = time.perf_counter()
    cfg = spec.train_config()
    student, snap = fit(checkpoint, teacher, text, cfg, progress=progress)
    write_tensors(student, trained_tensors(student), checkpoint)
    return {**spec.model_dump(mode="json"), "teacher": str(teacher), "format": student.kind, "text": text,
            "tokens": snap.step * cfg.batch_size * cfg.seq_len, "train_seconds": snap.wall_s,
            "wall_time_s": time.perf_counter() - start, "loss": loss_summary(snap.losses)}
