"""The recipe's top-level `distill:` block (pydantic, the user-input edge): KD after the steps.

    distill:
      text: austen:emma     # training text; default: the run's --calib text (never the --eval text)
      steps: 40             # bounded optimizer steps
      seq_len: 256
      batch_size: 2
      lr: 0.005             # relative: each tensor's Adam step is scaled by its RMS
      temperature: 1.0
      hidden_weight: 0.0    # per-block hidden-state MSE weight
      seed: 0
      autocast: bf16        # student precision on CPU: off | bf16

compress() writes the checkpoint, then distill/stage.py fine-tunes it in place against the dense source.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DistillSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None = None
    steps: int = Field(default=40, ge=1, le=100_000)
    seq_len: int = Field(default=256, ge=2)
    batch_size: int = Field(default=2, ge=1)
    lr: float = Field(default=5e-3, gt=0.0)
    temperature: float = Field(default=1.0, gt=0.0)
    hidden_weight: float = Field(default=0.0, ge=0.0)
    seed: int = 0
    autocast: Literal["off", "bf16"] = "bf16"

    def train_config(self):
        from presso.compression.distill.train import TrainConfig

        return TrainConfig(steps=self.steps, batch_size=self.batch_size, seq_len=self.seq_len, lr=self.lr,
                           temperature=self.temperature, hidden_weight=self.hidden_weight, seed=self.seed,
                           bf16=self.autocast == "bf16")
