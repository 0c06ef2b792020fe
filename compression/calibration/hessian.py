"""Accumulate each Linear's input Hessian H = 2/n * X^T X over calibration tokens via forward hooks.

Linears fed the same tensor (q/k/v after one norm, gate/up) share one X^T X product per batch.
"""

from __future__ import annotations

import torch


class HessianCollector:
    """Hooks on `linears` (name -> Linear); after the replay, `hessian(name)` is (in, in) fp32."""

    def __init__(self, linears: dict[str, torch.nn.Linear]):
        self._sums: dict[str, torch.Tensor] = {}
        self._tokens: dict[str, int] = {}
        # (input tensor, its X^T X): holding the tensor keeps its identity unique while it is cached.
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self._handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in linears.items()]

    def _hook(self, name: str):
        def fn(module, args):
            x = args[0].detach()
            if self._last is None or self._last[0] is not args[0]:
                flat = x.reshape(-1, x.shape[-1]).float()  # (tokens, in)
                self._last = (args[0], flat.T @ flat)  # (in, in)
            xtx = self._last[1]
            self._sums[name] = self._sums[name] + xtx if name in self._sums else xtx.clone()
            self._tokens[name] = self._tokens.get(name, 0) + x.numel() // x.shape[-1]

        return fn

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._last = None

    def tokens(self, name: str) -> int:
        return self._tokens.get(name, 0)

    def hessian(self, name: str) -> torch.Tensor | None:
        if name not in self._sums:
            return None
        return self._sums[name] * (2.0 / self._tokens[name])
