"""The distillation loop: bounded steps of Adam on the student's trainable tensors against a frozen teacher.

Step size is relative: each tensor's learning rate is --lr times its initial RMS (scales, codebooks and
norm weights differ by orders of magnitude), or times the grid span for integer zero points. The rate
follows a cosine from 1x to 0.1x over --steps, a function of the step alone, so a resumed run continues
on the same schedule. The student may run under bf16 autocast; the teacher runs in fp32 without grad.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from presso.compression.distill import state
from presso.compression.distill.data import batch_for_step
from presso.compression.distill.loss import kd_loss


@dataclass(frozen=True, slots=True)
class TrainConfig:
    steps: int
    batch_size: int
    seq_len: int
    lr: float
    temperature: float
    hidden_weight: float = 0.0
    seed: int = 0
    bf16: bool = False  # student forward/backward under torch.autocast("cpu", bfloat16)


def make_optimizer(params: dict[str, torch.nn.Parameter], lr: float, bits: dict[str, int]) -> torch.optim.Adam:
    """One param group per tensor, lr scaled by its RMS (zero points: by the grid span 2**bits - 1)."""
    groups = []
    for name, p in params.items():
        unit = float((1 << bits[name]) - 1) if name in bits else float(p.detach().float().pow(2).mean().sqrt())
        groups.append({"params": [p], "lr": lr * (unit if unit > 0 else 1.0), "name": name})
    opt = torch.optim.Adam(groups, betas=(0.9, 0.95), eps=1e-12)
    for g in opt.param_groups:
        g["base_lr"] = g["lr"]
    return opt


def lr_factor(step: int, steps: int) -> float:
    return 0.1 + 0.45 * (1.0 + math.cos(math.pi * step / max(steps, 1)))


def train_step(student: torch.nn.Module, teacher: torch.nn.Module, batch: torch.Tensor, opt: torch.optim.Optimizer,
               cfg: TrainConfig) -> tuple[float, dict]:
    """One optimizer step on batch (B, L) int64 -> (loss, parts)."""
    hidden = cfg.hidden_weight > 0
    with torch.no_grad():
        t_out = teacher(input_ids=batch, output_hidden_states=hidden)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        s_out = student(input_ids=batch, output_hidden_states=hidden)
    loss, parts = kd_loss(s_out, t_out, cfg.temperature, cfg.hidden_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach()), parts


def train(student: torch.nn.Module, teacher: torch.nn.Module, ids: torch.Tensor, params: dict[str, torch.nn.Parameter],
          opt: torch.optim.Optimizer, cfg: TrainConfig, start: state.Snapshot,
          checkpoint: Callable[[state.Snapshot], None], save_every: int, stop_after: int | None = None,
          progress: bool = True) -> state.Snapshot:
    """Run steps start.step .. cfg.steps-1; `checkpoint(snapshot)` every save_every steps and at the end.

    `stop_after` ends the run early after that many new steps (an interruption, for resume) -> the snapshot.
    """
    student.eval()  # no dropout: the run is deterministic; gradients still flow
    teacher.eval()
    losses, wall, t0 = list(start.losses), start.wall_s, time.perf_counter()
    bar = tqdm(range(start.step, cfg.steps), initial=start.step, total=cfg.steps, desc="distill", unit="step",
               disable=not progress)
    step = start.step
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(step, cfg.steps)
        batch = batch_for_step(ids, step, cfg.seed, cfg.batch_size, cfg.seq_len)
        loss, parts = train_step(student, teacher, batch, opt, cfg)
        losses.append(loss)
        recent = losses[-10:]
        bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", **{k: f"{v:.4f}" for k, v in parts.items()})
        done = step + 1
        snap = state.Snapshot(done, losses, wall + time.perf_counter() - t0)
        if done % save_every == 0 or done == cfg.steps or (stop_after and done - start.step >= stop_after):
            checkpoint(snap)
        if stop_after and done - start.step >= stop_after:
            bar.close()
            return snap
    bar.close()
    return state.Snapshot(cfg.steps, losses, wall + time.perf_counter() - t0)
