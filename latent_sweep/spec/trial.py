"""What every experiment's config shares, and the schedule it trains under."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from latent_sweep.spec.schedule import MAX_STEP, Dopesheet
from latent_sweep.spec.timeline import Timeline


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleConfig(Strict):
    keyframes: list[dict[str, Any]] = Field(min_length=1)
    scale: dict[str, float] = {}


class TrialConfig(Strict):
    """Fields of every trial: identity, seed, length, intervals, device, schedule."""

    name: str = "trial"
    seed: int = Field(0, ge=0, le=2**32 - 1)  # the range numpy and torch both take
    steps: int | None = Field(None, ge=1, le=MAX_STEP, description="default: the schedule's length")
    eval_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(2500, ge=1)
    snapshot_every: int | None = Field(None, ge=1, description="latent snapshots; the final one always")
    history_every: int | None = Field(None, ge=1, description="log every n-th step; default: automatic")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # torch.compile the step's loss: faster steps (measured 1.6× at K = 64 on one CPU thread)
    # for a one-off compile of tens of seconds per process; pays off for long runs and large K.
    compile: bool = False
    # Capture each distinct step (phase, active terms, action) as a CUDA graph and replay it:
    # removes the per-step Python and kernel-launch cost that bounds small populations on a
    # GPU (docs/populations.md). `auto`: on for CUDA; CPU has no graphs and ignores it.
    cuda_graph: Literal["auto", "off"] = "auto"
    schedule: ScheduleConfig
    # A population: per member, config paths and the values it sets (latent_sweep.spec.population).
    members: list[dict[str, Any]] | None = Field(None, min_length=1)

    def timeline(self, source: str | None = None) -> tuple[Timeline, int]:
        """The realized schedule (it must define `lr`) and the number of steps to train; errors
        name `source`, the file the config came from."""
        sheet = Dopesheet.from_records(self.schedule.keyframes, source, path_prefix="schedule.keyframes")
        sheet.require(["lr"])
        timeline = Timeline(sheet, scale=self.schedule.scale)
        return timeline, self.steps or len(timeline)
