"""CUDA graphs of the training step: each distinct step shape captured once, then replayed.

A step is launch-bound on a GPU for small populations (hundreds of tiny kernels and their
Python), so on CUDA the loop captures the whole step — draws, forward, backward, Adam,
divergence flags, the history row — as one graph per step *shape* (the phase's training
set, the active terms, whether history is logged) and replays it: one launch per step. A
step may do this because it reads every varying value from device tensors at a device step
counter and never syncs with the host (docs/populations.md, "GPU").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch

# Warm-up runs before a capture: lazy initialisation (cuBLAS handles, autograd's streams, a
# compiled loss's first call) must happen outside it.
WARMUPS = 2


class StepGraphs:
    """Runs `step(key, step)`: on CUDA, by replaying the graph captured for `key`.

    `state()` lists every tensor a step changes that a warm-up must not leave changed
    (parameters, optimizer moments, counters, the history buffer): warm-ups run real steps,
    so their effects are undone before the capture. Whatever else a step writes must be a
    function of the step counter alone (rewriting it is harmless).
    """

    def __init__(
        self,
        step: Callable[[Hashable, int | None], None],
        state: Callable[[], list[torch.Tensor]],
        enabled: bool,
    ) -> None:
        self.step, self.state, self.enabled = step, state, enabled
        self.graphs: dict[Hashable, torch.cuda.CUDAGraph] = {}
        self.pool = None  # one memory pool for all graphs: they never run at the same time

    def __call__(self, key: Hashable, step: int) -> None:
        """Run step `step` (the host's copy of the device counter) of shape `key`."""
        if not self.enabled:
            self.step(key, step)
            return
        graph = self.graphs.get(key)
        if graph is None:
            graph = self.graphs[key] = self._capture(key)
        graph.replay()

    def _capture(self, key: Hashable) -> torch.cuda.CUDAGraph:
        saved = [t.clone() for t in self.state()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUPS):
                self.step(key, None)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for t, value in zip(self.state(), saved, strict=True):
                t.copy_(value)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            self.step(key, None)
        self.pool = graph.pool()
        return graph
