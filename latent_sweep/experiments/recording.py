"""What every experiment loop records: per-step history, evaluations, latent snapshots.

Loss values stay on the device in a preallocated buffer (no host sync per step); the buffer
is written as one Parquet part per checkpoint interval, together with the schedule values
and phases of those steps, right before the checkpoint that covers them is saved.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from latent_sweep import history
from latent_sweep.errors import UserError
from latent_sweep.timeline import Timeline


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("`device` is `cuda`, but no CUDA device is available here; use `auto` or `cpu`")
    return torch.device(name)


def training_state(model: torch.nn.Module, optimizer, gen: torch.Generator) -> dict:
    """What every loop's checkpoint holds: weights, optimizer state, the sampling generator."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "generator": gen.get_state()}


def resume(state: dict | None, model: torch.nn.Module, optimizer, gen: torch.Generator):
    """Load a checkpoint's training state into the loop's objects; returns (step, wall time,
    scores) to continue from — (0, 0.0, {}) for a fresh start. The scores are what a trial
    that had already finished returns when run again."""
    if state is None:
        return 0, 0.0, {}
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"].to(gen.get_state().device))
    return int(state["step"]), float(state["wall_time"]), dict(state["scores"])


def due(cfg, done: int, total: int) -> tuple[bool, bool, bool]:
    """(evaluate, snapshot, checkpoint) after `done` steps: at every interval and at the end."""
    last = done == total
    checkpoint = done % cfg.checkpoint_every == 0 or last
    snapshot = bool(cfg.snapshot_every and done % cfg.snapshot_every == 0) or last
    return done % cfg.eval_every == 0 or checkpoint, snapshot, checkpoint


class Recorder:
    """History rows (`step`, `phase`, schedule values, `term.*`, `weighted.*`, `loss`,
    `wall_time`), evaluation rows and latent snapshots of one trial directory.

    Created at the step the loop starts from: parts written after that step's checkpoint
    (by a run that was killed) are dropped, so a resumed trial rewrites exactly those rows.
    """

    def __init__(
        self,
        trial_dir: Path,
        timeline: Timeline,
        terms: list[str],
        capacity: int,
        start: int,
        elapsed: float,
        device: torch.device,
    ) -> None:
        self.trial_dir, self.timeline, self.terms = Path(trial_dir), timeline, terms
        history.truncate(self.trial_dir / "history", start)
        history.truncate(self.trial_dir / "evals", start + 1)
        self.buf = torch.zeros(capacity, 2 * len(terms) + 1, device=device)
        self.wall = np.zeros(capacity)
        self.first, self.len = start, 0
        self.evals: list[dict[str, float]] = []
        self.t0 = time.perf_counter() - elapsed

    def log(self, raw: torch.Tensor, weighted: torch.Tensor, loss: torch.Tensor) -> None:
        """One step: unweighted and weighted terms [n_terms] and the total, all on the device."""
        self.buf[self.len] = torch.cat([raw, weighted, loss.reshape(1)]).detach()
        self.wall[self.len] = self.elapsed()
        self.len += 1

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def finite(self) -> bool:
        """Whether the primary (first) term and the total stayed finite since the last flush
        (one host sync). Other terms may go non-finite: they are recorded, not summed."""
        rows = self.buf[: self.len]
        return bool(torch.isfinite(rows[:, 0]).all() & torch.isfinite(rows[:, -1]).all())

    def report(self, session, step: int, total: int, scores: dict[str, float], state: dict | None) -> None:
        """Record an evaluation and report it. With `state` (a checkpoint is due) the history is
        written first, so a checkpoint never points past it; the checkpoint gets step, wall
        time and the scores (what a finished trial returns when run again) added."""
        self.evals.append({"step": step, **scores})
        checkpoint = None
        if state is not None:
            self.flush()
            checkpoint = {**state, "step": step, "wall_time": self.elapsed(), "scores": scores}
        session.report({"step": step, "done": step == total, **scores}, checkpoint=checkpoint)

    def snapshot(
        self,
        step: int,
        latents: torch.Tensor,
        rgb: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        """Evaluation-set latents at `step` (`latents/step-<step>.parquet`), with display colors."""
        z = latents.detach().cpu().numpy()
        cols = {f"z{i}": pa.array(z[:, i], pa.float32()) for i in range(z.shape[1])}
        if rgb is not None:
            cols.update({c: pa.array(rgb[:, i], pa.float32()) for i, c in enumerate("rgb")})
        if labels is not None:
            cols["label"] = pa.array(np.asarray(labels).astype(np.int64), pa.int64())
        directory = self.trial_dir / "latents"
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"step-{step:09d}.parquet"
        tmp = directory / f".{final.name}.tmp"
        pq.write_table(pa.table(cols), tmp)
        tmp.replace(final)

    def flush(self) -> None:
        """Write the buffered history and evaluations as part files; called before a checkpoint."""
        if self.len:
            self._write_history()
        if self.evals:
            names = [k for k in self.evals[0] if k != "step"]
            cols = {"step": pa.array([r["step"] for r in self.evals], pa.int64())}
            cols.update({k: pa.array([float(r[k]) for r in self.evals], pa.float64()) for k in names})
            history.write_part(self.trial_dir / "evals", self.evals[0]["step"], pa.table(cols))
        self.first += self.len
        self.len, self.evals = 0, []

    def _write_history(self) -> None:
        rows = self.buf[: self.len].cpu().numpy().astype(np.float64)
        steps = np.arange(self.first, self.first + self.len)
        at = np.minimum(steps, len(self.timeline) - 1)  # past the schedule's end, values hold
        names = np.array([p.name for p in self.timeline.phases] + [None], dtype=object)
        cols: dict[str, pa.Array] = {
            "step": pa.array(steps, pa.int64()),
            "phase": pa.array(names[self.timeline.phase_index[at]], pa.string()),
        }
        for prop in self.timeline.props:
            cols[prop] = pa.array(self.timeline.values(prop)[at], pa.float64())
        n = len(self.terms)
        for j, name in enumerate(self.terms):
            cols[f"term.{name}"] = pa.array(rows[:, j], pa.float64())
            cols[f"weighted.{name}"] = pa.array(rows[:, n + j], pa.float64())
        cols["loss"] = pa.array(rows[:, -1], pa.float64())
        cols["wall_time"] = pa.array(self.wall[: self.len], pa.float64())
        history.write_part(self.trial_dir / "history", self.first, pa.table(cols))
