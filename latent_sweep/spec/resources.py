"""A trial's share of the cluster: `sweep.resources` (`cpu`, `gpu`) and what `gpu: auto` becomes.

`gpu: auto` (the default) is resolved once Ray runs, on the cluster the sweep connected to: a
cluster with GPUs gives each trial a share sized from its members (`gpu_share`), one without
gives none, and so does a sweep whose trials all have `device: cpu`. A number is used as given.
Users' reference: docs/populations.md ("GPU") and docs/sweep-file.md.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from pydantic import Field, field_validator

from latent_sweep.spec.trial import Strict

AUTO = "auto"
# Members per trial → its GPU share: (at most this many members, share), smallest first; above
# the last bound a trial gets a whole GPU.
GPU_SHARES = ((512, 1 / 8), (1024, 1 / 4), (2048, 1 / 2))


class Resources(Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float | Literal["auto"] = Field(AUTO, description="GPUs per trial, or auto: sized from its members")

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, value: Any) -> Any:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value != AUTO and not (number and value >= 0):
            raise ValueError(
                "must be `auto` (a share sized from each trial's members where the Ray cluster has "
                "GPUs, else 0) or a number of GPUs ≥ 0 (fractions share a card)"
            )
        return value


def gpu_share(members: int) -> float:
    """The GPU share `gpu: auto` gives a trial of `members` members on a cluster with GPUs: 1/8
    up to 512 members, 1/4 up to 1,024, 1/2 up to 2,048, a whole GPU above.

    Small populations are bound by kernel launches, not arithmetic (an H200 trains a K = 1,024
    ex17 population at ~0.2–1.6M model-steps/s), so several such trials share one card and run
    concurrently; large ones get more of it."""
    return next((share for most, share in GPU_SHARES if members <= most), 1.0)


def trial_gpus(gpu: float | str, members: int, cluster_gpus: float, devices: Collection[str]) -> float:
    """The GPUs each trial asks Ray for: an explicit `gpu` as given; `auto`: `gpu_share(members)`
    when the cluster has GPUs and some trial may use one (`devices`: the `device` values the
    sweep's trials have), else 0."""
    if gpu != AUTO:
        return float(gpu)
    if cluster_gpus <= 0 or set(devices) <= {"cpu"}:
        return 0.0
    return gpu_share(members)


def trains_on(devices: Collection[str], gpu: float) -> str:
    """Where the trials train, for the start line: `cuda` or `cpu` (`cpu/cuda` when they differ).
    `device: auto` trains on CUDA exactly when the trial has a GPU share."""
    where = {"cuda" if d == "cuda" or (d == AUTO and gpu > 0) else "cpu" for d in devices}
    return "/".join(sorted(where))
