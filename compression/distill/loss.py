"""The distillation objective: logit KL(teacher || student) at temperature T, plus optional hidden-state MSE.

logits (B, L, V) from both models -> per-token KL of the softened distributions, averaged over the B*L
tokens and multiplied by T^2 (so its gradient scale does not shrink with T, as in Hinton et al. 2015);
hidden states (one (B, L, H) tensor per decoder block) -> mean over blocks of MSE / mean(teacher^2), a
scale-free per-block match weighted by `hidden_weight`. Everything is computed in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def logit_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """student, teacher (B, L, V) -> scalar T^2 * mean over tokens of KL(p_teacher || p_student)."""
    vocab = student.shape[-1]
    s = F.log_softmax(student.float().reshape(-1, vocab) / temperature, dim=-1)  # (B*L, V)
    t = F.log_softmax(teacher.float().reshape(-1, vocab) / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


def hidden_mse(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Per-block outputs (each (B, L, H)) -> mean over blocks of MSE normalised by the teacher's power."""
    assert len(student) == len(teacher), (len(student), len(teacher))
    terms = [F.mse_loss(s.float(), t.float()) / t.float().pow(2).mean().clamp_min(1e-12)
             for s, t in zip(student, teacher, strict=True)]
    return torch.stack(terms).mean()


def kd_loss(student_out, teacher_out, temperature: float, hidden_weight: float) -> tuple[torch.Tensor, dict]:
    """HF model outputs (logits, and hidden_states when hidden_weight > 0) -> (loss, {"kl", "hidden"})."""
    kl = logit_kl(student_out.logits, teacher_out.logits, temperature)
    if hidden_weight <= 0:
        return kl, {"kl": float(kl.detach())}
    # hidden_states[0] is the (frozen, identical) embedding output; [1:] are the decoder blocks' outputs
    hid = hidden_mse(student_out.hidden_states[1:], teacher_out.hidden_states[1:])
    return kl + hidden_weight * hid, {"kl": float(kl.detach()), "hidden": float(hid.detach())}
