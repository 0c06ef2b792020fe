"""Resumable training state in `<out>.partial/state.safetensors` (no pickle): trained tensors, Adam moments
and, in the file's metadata, the step reached, the loss curve so far and the run's settings.

Written with a temp file + os.replace every few steps, so an interrupted `presso distill --resume`
continues from the last save instead of from zero. A resume with different settings is refused with one
line naming the first differing field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from presso.compression.checkpoint.errors import PressoInputError

STATE_FILE = "state.safetensors"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Snapshot:
    step: int  # steps completed
    losses: list[float]
    wall_s: float  # training seconds spent before this snapshot


def partial_dir(out: Path) -> Path:
    return Path(str(Path(out).expanduser()) + ".partial")


def save(directory: Path, settings: dict, snap: Snapshot, params: dict[str, torch.Tensor],
         opt: torch.optim.Optimizer) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"param/{n}": p.detach().clone().contiguous() for n, p in params.items()}
    for name, p in params.items():
        for key, value in opt.state.get(p, {}).items():
            tensors[f"adam/{key}/{name}"] = value.detach().clone().contiguous()  # exp_avg(_sq), step
    meta = {"format_version": str(FORMAT_VERSION), "settings": json.dumps(settings, sort_keys=True),
            "step": str(snap.step), "losses": json.dumps(snap.losses), "wall_s": repr(snap.wall_s)}
    tmp = directory / f".{STATE_FILE}.tmp-{os.getpid()}"
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, directory / STATE_FILE)


def load(directory: Path, settings: dict, params: dict[str, torch.Tensor], opt: torch.optim.Optimizer) -> Snapshot:
    """Restore params and optimizer state in place; -> the snapshot's step / losses / time."""
    path = directory / STATE_FILE
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if meta.get("format_version") != str(FORMAT_VERSION):
            raise PressoInputError(f"{path}: field format_version: unsupported value {meta.get('format_version')!r}")
        saved = json.loads(meta["settings"])
        for key in sorted(set(saved) | set(settings)):
            if saved.get(key) != settings.get(key):
                raise PressoInputError(f"{path}: cannot resume: {key} was {saved.get(key)!r}, now "
                                       f"{settings.get(key)!r} (rerun with the same options or delete {directory})")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(fh.get_tensor(f"param/{name}"))
        for key in fh.keys():
            if key.startswith("adam/"):
                _, field, name = key.split("/", 2)
                opt.state[params[name]][field] = fh.get_tensor(key)
    return Snapshot(int(meta["step"]), json.loads(meta["losses"]), float(meta["wall_s"]))
