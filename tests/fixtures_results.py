"""Result directories for the results/plots tests, built per the layout in SPEC §5 and §8.

`alpha`: a finished sweep (sweep.yaml + trials.parquet) of four trials whose final scores are
the hand-checkable numbers in ALPHA. `beta`: an interrupted sweep without trials.parquet, two
trial directories (one and two levels down).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from latent_sweep.history import write_part

KEYFRAMES = [
    {"STEP": 0, "PHASE": "warmup", "lr": 0.01, "reg-polar": 0.006},
    {"STEP": 40, "PHASE": "main", "ACTION": "anchor"},
    {"STEP": 50, "reg-polar": 0.0002},
    {"STEP": 99, "lr": 0.001},
]
SCORES = ("hue_corr", "hue_order", "recon_mse", "anchor_error_red", "trustworthiness_k10")
# trial_id: (labels.mode, scale, seed, status, final scores in SCORES order)
ALPHA = {
    "a0": ("soft", 0.5, 0, "TERMINATED", (0.90, 1.0, 0.004, 0.10, 0.95)),
    "a1": ("soft", 2.0, 1, "TERMINATED", (0.70, 0.8, 0.001, 0.30, 0.90)),
    "a2": ("hard", 0.5, 0, "TERMINATED", (0.95, 1.0, 0.003, 0.05, 0.97)),
    "a3": ("hard", 2.0, 1, "ERROR", (0.60, 0.6, 0.006, 0.40, 0.85)),
}
BETA = {
    "b0": ("soft", 1.0, 2, "UNKNOWN", (0.80, 0.9, 0.002, 0.20, 0.93)),
    "b1": ("hard", 1.0, 3, "UNKNOWN", (0.85, 1.0, 0.005, 0.15, 0.96)),
}
SPACE = {"labels.mode": {"choice": ["soft", "hard"]}, "schedule.scale.reg-polar": {"loguniform": [0.1, 10]}}
STEPS = 99


def trial_config(mode: str, scale: float, seed: int) -> dict:
    return {
        "seed": seed,
        "labels": {"mode": mode},
        "schedule": {"keyframes": KEYFRAMES, "scale": {"reg-polar": scale}},
        "sweep_params": {"reg_polar_scale": scale},
    }


def make_trial(trial_dir: Path, config: dict, final: dict[str, float], latent_dims: int = 4) -> None:
    """config.yaml, history in two parts, evals (final row = `final`), two latent snapshots."""
    rng = np.random.default_rng(config["seed"])
    trial_dir.mkdir(parents=True)
    (trial_dir / "config.yaml").write_text(yaml.safe_dump(config))
    steps = np.arange(0, STEPS + 1, 10, dtype=np.int64)
    decay = np.exp(-steps / 40.0)
    history = pd.DataFrame(
        {
            "step": steps,
            "phase": np.where(steps < 40, "warmup", "main"),
            "lr": np.linspace(0.01, 0.001, len(steps)),
            "reg-polar": np.full(len(steps), 0.006),
            "term.recon": 0.1 * decay + 0.001,
            "term.reg-polar": 0.5 * decay,
            "weighted.recon": 0.1 * decay + 0.001,
            "weighted.reg-polar": np.where(steps < 50, 0.003 * decay, 0.0),  # a zero for log axes
            "wall_time": 0.05 * steps.astype(float),
        }
    )
    history["loss"] = history["weighted.recon"] + history["weighted.reg-polar"]
    for first, part in ((0, history[history.step < 50]), (50, history[history.step >= 50])):
        write_part(trial_dir / "history", first, pa.Table.from_pandas(part, preserve_index=False))
    evals = pd.DataFrame([{k: v * 0.5 for k, v in final.items()}, final])
    evals.insert(0, "step", np.array([50, STEPS], dtype=np.int64))
    write_part(trial_dir / "evals", 0, pa.Table.from_pandas(evals, preserve_index=False))
    n = 60
    z = rng.normal(size=(n, latent_dims))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    latents = pd.DataFrame({f"z{i}": z[:, i] for i in range(latent_dims)})
    latents[["r", "g", "b"]] = rng.uniform(size=(n, 3))
    latents["label"] = np.where(latents["r"] > 0.5, "red", "other")
    (trial_dir / "latents").mkdir()
    for step, scale in ((50, 2.0), (STEPS, 1.0)):
        latents.assign(**{f"z{i}": z[:, i] * scale for i in range(latent_dims)}).to_parquet(
            trial_dir / "latents" / f"step-{step:09d}.parquet"
        )


def make_sweep(root: Path, trials: dict, with_table: bool, nested: tuple[str, ...] = ()) -> Path:
    """A sweep directory; trials named in `nested` sit two levels down (in `group/`)."""
    root.mkdir(parents=True)
    sweep = {"space": SPACE, "metric": "hue_corr", "mode": "max", "num_samples": len(trials)}
    (root / "sweep.yaml").write_text(yaml.safe_dump({"experiment": "autoencoder", "sweep": sweep}))
    rows = []
    for trial_id, (mode, scale, seed, status, values) in trials.items():
        final = dict(zip(SCORES, values, strict=True))
        rel = f"group/{trial_id}" if trial_id in nested else trial_id
        make_trial(root / rel, trial_config(mode, scale, seed), final)
        rows.append(
            {
                "trial_id": trial_id,
                "status": status,
                "config.seed": seed,
                "config.labels.mode": mode,
                "config.schedule.scale.reg-polar": scale,
                **final,
                **{f"best_{k}": v for k, v in final.items()},
                "steps": STEPS,
                "wall_time_s": 4.95,
                "error": "RuntimeError: boom" if status == "ERROR" else None,
                "trial_dir": rel,
            }
        )
    if with_table:
        pd.DataFrame(rows).to_parquet(root / "trials.parquet")
    return root


def make_results(tmp: Path) -> tuple[Path, Path]:
    """The two sweeps: (alpha, beta)."""
    alpha = make_sweep(tmp / "alpha", ALPHA, with_table=True)
    beta = make_sweep(tmp / "beta", BETA, with_table=False, nested=("b1",))
    return alpha, beta
