"""What the loop records for every member: step history, evaluations, latent snapshots.

Loss values stay on the device in a preallocated buffer [steps, K, columns], written at a
device row counter (no host sync per step, and a captured step writes where the counter
points); the buffer is written as one Parquet part per checkpoint interval, right before the
checkpoint that covers it is saved. Rows are step-major, then member, and carry `trial_id`,
`member` and `seed` columns (latents also `step`); history may be decimated (`history_every`)
so a large population's history stays small (docs/populations.md has the bytes per member-step).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from latent_sweep.errors import UserError
from latent_sweep.store import atomic, history, layout

# History budget of one trial when `history_every` is automatic, and the uncompressed size of
# one value (every history column is 8 bytes wide).
HISTORY_BUDGET_BYTES = 200 * 2**20
VALUE_BYTES = 8


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("`device` is `cuda`, but no CUDA device is available here; use `auto` or `cpu`")
    return torch.device(name)


def due(cfg, done: int, total: int) -> tuple[bool, bool, bool]:
    """(evaluate, snapshot, checkpoint) after `done` steps: at every interval and at the end."""
    last = done == total
    checkpoint = done % cfg.checkpoint_every == 0 or last
    snapshot = bool(cfg.snapshot_every and done % cfg.snapshot_every == 0) or last
    return done % cfg.eval_every == 0 or checkpoint, snapshot, checkpoint


def history_every(requested: int | None, members: int, total: int, columns: int) -> int:
    """Log every n-th step: as requested, or the smallest n that keeps the history of
    `members` × `total` steps of `columns` values under HISTORY_BUDGET_BYTES (uncompressed)."""
    if requested is not None:
        return requested
    return max(1, math.ceil(members * total * columns * VALUE_BYTES / HISTORY_BUDGET_BYTES))


class Recorder:
    """History rows (`step`, `member`, `seed`, `phase`, schedule values, `term.*`,
    `weighted.*`, `loss`, `wall_time`), evaluation rows and latent snapshots of one trial.

    Created at the step the loop starts from: parts written after that step's checkpoint
    (by a run that was killed) are dropped, so a resumed trial rewrites exactly those rows.
    `schedule` maps each schedule property to its values [steps, D] per distinct member
    config; `index` [K] gives each member's config.
    """

    def __init__(
        self,
        trial_dir: Path,
        seeds: list[int],
        phases: np.ndarray,
        schedule: dict[str, np.ndarray],
        index: np.ndarray,
        terms: list[str],
        capacity: int,
        start: int,
        elapsed: float,
        device: torch.device,
    ) -> None:
        self.trial_dir, self.terms = Path(trial_dir), terms
        self.trial_id = history.trial_id_of(self.trial_dir)  # a column of every file written
        self.seeds = np.asarray(seeds, dtype=np.int64)
        self.phases, self.schedule, self.index = phases, schedule, index
        history.truncate(self.trial_dir / layout.HISTORY, start)
        history.truncate(self.trial_dir / layout.EVALS, start + 1)
        self.buf = torch.zeros(capacity, len(seeds), 2 * len(terms) + 1, device=device)
        self.slot = torch.zeros(1, dtype=torch.int64, device=device)  # the next row, on the device
        self.steps = np.zeros(capacity, dtype=np.int64)
        self.wall = np.zeros(capacity)
        self.len = 0
        self.evals: list[pd.DataFrame] = []
        self.t0 = time.perf_counter() - elapsed

    def log(self, raw: torch.Tensor, weighted: torch.Tensor, loss: torch.Tensor) -> None:
        """Device side of logging a step, part of the step: unweighted and weighted terms
        [K, n_terms] and the totals [K] into the buffer's next row."""
        row = torch.cat([raw, weighted, loss.unsqueeze(1)], dim=1)
        self.buf.index_copy_(0, self.slot, row.unsqueeze(0))
        self.slot.add_(1)

    def logged(self, step: int) -> None:
        """Host side, after the step ran: which step the row holds, and when."""
        self.steps[self.len] = step
        self.wall[self.len] = self.elapsed()
        self.len += 1

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def report(
        self, session, step: int, total: int, scores: pd.DataFrame, metrics: dict, state: dict | None
    ) -> None:
        """Record an evaluation and report it. With `state` (a checkpoint is due) the history is
        written first, so a checkpoint never points past it; the checkpoint gets step, wall
        time and the scores (what a finished trial returns when run again) added."""
        self.evals.append(scores.assign(step=step))
        checkpoint = None
        if state is not None:
            self.flush()
            checkpoint = {
                **state,
                "step": step,
                "wall_time": self.elapsed(),
                "scores": scores.to_dict("list"),
            }
        session.report({"step": step, "done": step == total, **metrics}, checkpoint=checkpoint)

    def snapshot(self, step: int, latents: torch.Tensor, extra: dict[str, np.ndarray]) -> None:
        """Evaluation-set latents [K, n, E] at `step` (`latents/step-<step>.parquet`), one row per
        member and point, with the points' display colors or labels (`extra`, [n] each)."""
        z = latents.detach().cpu().numpy()
        k, n, e = z.shape
        cols = {
            "trial_id": self._ids(k * n),
            "step": pa.array(np.full(k * n, step), pa.int64()),
            "member": pa.array(np.repeat(np.arange(k), n), pa.int64()),
            "seed": pa.array(np.repeat(self.seeds, n), pa.int64()),
        }
        cols.update({f"z{i}": pa.array(z[:, :, i].reshape(-1), pa.float32()) for i in range(e)})
        for name, values in extra.items():
            kind = pa.int64() if name == "label" else pa.float32()
            cols[name] = pa.array(np.tile(np.asarray(values), k), kind)
        final = self.trial_dir / layout.LATENTS / layout.snapshot_name(step)
        atomic.write_whole(final, lambda tmp: pq.write_table(pa.table(cols), tmp))

    def evaluated(self, step: int) -> bool:
        """Whether the trial's evaluations on disk include `step`."""
        done = history.read_table(self.trial_dir / layout.EVALS, columns=("step",))
        return bool(len(done)) and step in set(done["step"])

    def flush(self) -> None:
        """Write the buffered history and evaluations as part files; called before a checkpoint."""
        if self.len:
            self._write_history()
        if self.evals:
            first = int(self.evals[0]["step"].iloc[0])
            history.write_part(self.trial_dir / layout.EVALS, first, self._evals())
        self.len, self.evals = 0, []
        self.slot.zero_()

    def _evals(self) -> pa.Table:
        frame = pd.concat(self.evals, ignore_index=True)
        cols = {"trial_id": self._ids(len(frame))} | {
            name: pa.array(frame[name].to_numpy(np.int64), pa.int64()) for name in ("step", "member", "seed")
        }
        for name in frame.columns:
            if name not in (*cols, "diverged_at"):
                cols[name] = pa.array(frame[name].to_numpy(np.float64), pa.float64())
        cols["diverged_at"] = pa.array(frame["diverged_at"], pa.int64(), from_pandas=True)
        return pa.table(cols)

    def _write_history(self) -> None:
        rows = self.buf[: self.len].cpu().numpy().astype(np.float64)  # [steps, K, columns]
        steps = self.steps[: self.len]
        k = len(self.seeds)

        def flat(a: np.ndarray, kind: pa.DataType) -> pa.Array:
            return pa.array(a.reshape(-1), kind)

        cols: dict[str, pa.Array] = {
            "trial_id": self._ids(len(steps) * k),
            "step": flat(np.repeat(steps, k), pa.int64()),
            "member": flat(np.tile(np.arange(k), len(steps)), pa.int64()),
            "seed": flat(np.tile(self.seeds, len(steps)), pa.int64()),
            "phase": pa.array(np.repeat(self.phases[steps], k), pa.string()),
        }
        for prop, values in self.schedule.items():
            cols[prop] = flat(values[steps][:, self.index], pa.float64())
        n = len(self.terms)
        for j, name in enumerate(self.terms):
            cols[f"term.{name}"] = flat(rows[:, :, j], pa.float64())
            cols[f"weighted.{name}"] = flat(rows[:, :, n + j], pa.float64())
        cols["loss"] = flat(rows[:, :, -1], pa.float64())
        cols["wall_time"] = flat(np.repeat(self.wall[: self.len], k), pa.float64())
        history.write_part(self.trial_dir / layout.HISTORY, int(steps[0]), pa.table(cols))

    def _ids(self, n: int) -> pa.Array:
        return pa.repeat(pa.scalar(self.trial_id, pa.string()), n)
