"""Choose one grid per Linear: the least total predicted loss whose bytes fit a budget.

A multiple-choice knapsack, solved greedily by marginal loss per byte: every Linear starts at its
cheapest option; upgrades along each Linear's lower convex hull of (bytes, loss) are taken in order of
loss saved per extra byte while they fit; then any remaining room is spent on the best single upgrades
that still fit (off-hull options included). On convex tables this is the exact optimum at every hull
breakpoint, and it always ends within one upgrade of the budget: whatever is left is smaller than
every remaining upgrade of every Linear. Off breakpoints
the greedy total is within one Linear's loss span of the optimum (checked against brute force in tests).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Generic, TypeVar

from presso.compression.checkpoint.errors import PressoInputError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Option(Generic[T]):
    key: T  # what the option stands for (a GridSpec)
    nbytes: int
    loss: float


def _hull(options: list[Option]) -> list[int]:
    """Indices of the lower convex hull of (bytes, loss), cheapest first, loss strictly decreasing."""
    order = sorted(range(len(options)), key=lambda i: (options[i].nbytes, options[i].loss))
    hull: list[int] = []
    for i in order:
        o = options[i]
        if hull and o.loss >= options[hull[-1]].loss:
            continue  # dominated: costs at least as much, saves nothing
        while len(hull) >= 2:
            a, b = options[hull[-2]], options[hull[-1]]
            # b lies on or above the segment a -> o: drop it (its marginal rate is worse than o's)
            if (b.loss - a.loss) * (o.nbytes - a.nbytes) >= (o.loss - a.loss) * (b.nbytes - a.nbytes):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def allocate(layers: list[list[Option]], budget: int) -> list[int]:
    """layers[i] = options of Linear i -> chosen option index per Linear, total bytes <= budget."""
    choice = [min(range(len(opts)), key=lambda k: (opts[k].nbytes, opts[k].loss)) for opts in layers]
    used = sum(opts[k].nbytes for opts, k in zip(layers, choice, strict=True))
    if used > budget:
        raise PressoInputError(f"mixed target needs {budget} bytes for the targeted Linears but even the smallest "
                               f"candidates take {used}; raise the target or add smaller candidates")
    hulls = [_hull(opts) for opts in layers]
    position = [h.index(k) for h, k in zip(hulls, choice, strict=True)]
    heap: list[tuple[float, int, int]] = []

    def push(i: int) -> None:
        h, p = hulls[i], position[i]
        if p + 1 < len(h):
            cur, nxt = layers[i][h[p]], layers[i][h[p + 1]]
            heapq.heappush(heap, (-(cur.loss - nxt.loss) / max(nxt.nbytes - cur.nbytes, 1), i, p + 1))

    for i in range(len(layers)):
        push(i)
    while heap:
        _, i, p = heapq.heappop(heap)
        extra = layers[i][hulls[i][p]].nbytes - layers[i][choice[i]].nbytes
        if used + extra > budget:
            continue  # later hull steps of this Linear cost even more: it stays where it is
        used += extra
        choice[i], position[i] = hulls[i][p], p
        push(i)
    return _fill(layers, choice, budget - used)


def _fill(layers: list[list[Option]], choice: list[int], room: int) -> list[int]:
    """Spend leftover bytes on the single upgrades (any option) that save the most loss and still fit."""
    while True:
        best = None
        for i, opts in enumerate(layers):
            cur = opts[choice[i]]
            for k, o in enumerate(opts):
                extra, saved = o.nbytes - cur.nbytes, cur.loss - o.loss
                if saved > 0 and extra <= room and (best is None or saved > best[0]):
                    best = (saved, i, k, extra)
        if best is None:
            return choice
        _, i, k, extra = best
        choice[i], room = k, room - extra
