"""Result directories for the results/plots tests, built per the trial layout in the README.

`alpha`: a finished sweep (sweep.yaml + trials.parquet) of four trials whose final scores are
the hand-checkable numbers in ALPHA. `beta`: an interrupted sweep without trials.parquet, two
trial directories (one and two levels down). Their trials train one member each. `gamma`: a
sweep of population trials (GAMMA): packed configs × two seeds, `members:` in each config.yaml.
Every table has the `member` and `seed` columns the loop writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from latent_sweep.store.history import write_part

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


def make_trial(
    trial_dir: Path,
    config: dict,
    final: dict[str, float] | list[dict[str, float]],
    latent_dims: int = 4,
    diverged_at: dict[int, int] | None = None,
) -> None:
    """config.yaml, history in two parts, evals (final row = `final`), two latent snapshots.
    `final` as a list: one dict per member (else the one member's); every file holds all members
    (`member`, `seed` columns); `diverged_at` maps a member to the step it diverged at (its final
    scores NaN)."""
    members = final if isinstance(final, list) else None
    seeds = [m["seed"] for m in config["members"]] if members else [config["seed"]]
    rng = np.random.default_rng(seeds[0])
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
    history = _per_member(history, seeds)
    for first, part in ((0, history[history.step < 50]), (50, history[history.step >= 50])):
        write_part(trial_dir / "history", first, pa.Table.from_pandas(part, preserve_index=False))
    write_part(trial_dir / "evals", 0, member_evals(members or [final], seeds, diverged_at or {}))
    n = 60
    z = rng.normal(size=(n, latent_dims))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    latents = pd.DataFrame({f"z{i}": z[:, i] for i in range(latent_dims)})
    latents[["r", "g", "b"]] = rng.uniform(size=(n, 3))
    latents["label"] = np.where(latents["r"] > 0.5, "red", "other")
    if members:  # member m holds 10 + m points
        latents = pd.concat(
            [latents.iloc[: 10 + m].assign(member=m, seed=s) for m, s in enumerate(seeds)], ignore_index=True
        )
    else:
        latents = latents.assign(member=0, seed=seeds[0])
    (trial_dir / "latents").mkdir()
    for step, scale in ((50, 2.0), (STEPS, 1.0)):
        latents.assign(**{f"z{i}": latents[f"z{i}"] * scale for i in range(latent_dims)}).to_parquet(
            trial_dir / "latents" / f"step-{step:09d}.parquet"
        )


def _per_member(table: pd.DataFrame, seeds: list[int]) -> pd.DataFrame:
    """Every row once per member, members of a step together, `member` and `seed` after `step`."""
    out = pd.concat([table.assign(member=m, seed=s) for m, s in enumerate(seeds)], ignore_index=True)
    out = out.sort_values(["step", "member"], kind="stable").reset_index(drop=True)
    return out[["step", "member", "seed", *table.columns.drop("step")]]


def member_evals(finals: list[dict[str, float]], seeds: list[int], diverged_at: dict[int, int]) -> pa.Table:
    """Two evaluations (step 50: half the final values; STEPS: the finals) of every member, with
    the loop's explicit schema; a diverged member has NaN scores and `diverged_at` from then on."""
    rows = []
    for step in (50, STEPS):
        for m, (final, seed) in enumerate(zip(finals, seeds, strict=True)):
            gone = m in diverged_at and diverged_at[m] <= step
            scores = {k: np.nan if gone else v * (0.5 if step == 50 else 1.0) for k, v in final.items()}
            rows.append(
                {
                    "step": step,
                    "member": m,
                    "seed": seed,
                    **scores,
                    "diverged_at": diverged_at[m] if gone else None,
                }
            )
    schema = pa.schema(
        [("step", pa.int64()), ("member", pa.int64()), ("seed", pa.int64())]
        + [(k, pa.float64()) for k in finals[0]]
        + [("diverged_at", pa.int64())]
    )
    return pa.table({f.name: pa.array([r[f.name] for r in rows], type=f.type) for f in schema}, schema=schema)


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
                "member": 0,
                "seed": seed,
                "status": status,
                "config.seed": seed,
                "config.labels.mode": mode,
                "config.schedule.scale.reg-polar": scale,
                **final,
                **{f"best_{k}": v for k, v in final.items()},
                "diverged_at": None,
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


# trial_id: (labels.mode, [(scale, final scores in SCORES order) per packed config], diverged members)
# Members: for each config, seeds 0 and 1 (member index = config × 2 + seed); the second score
# tuple of a config is its seed-1 member's.
GAMMA = {
    "g0": ("soft", [(0.5, [(0.90, 1.0, 0.002, 0.10, 0.95), (0.80, 0.9, 0.003, 0.20, 0.94)]),
                    (2.0, [(0.60, 0.7, 0.005, 0.30, 0.90), (0.50, 0.5, 0.009, 0.40, 0.80)])], {3: 70}),
    "g1": ("soft", [(1.0, [(0.95, 1.0, 0.001, 0.05, 0.97), (0.85, 1.0, 0.004, 0.15, 0.96)])], {}),
}  # fmt: skip
GAMMA_SPACE = {"schedule.scale.reg-polar": {"loguniform": [0.1, 10]}}


def gamma_members(trial_id: str) -> list[tuple[float, int, dict[str, float]]]:
    """(scale, seed, final scores) of each member of a GAMMA trial, in member order."""
    _, configs, _ = GAMMA[trial_id]
    return [
        (scale, seed, dict(zip(SCORES, values, strict=True)))
        for scale, per_seed in configs
        for seed, values in enumerate(per_seed)
    ]


def make_population_sweep(root: Path) -> Path:
    """`gamma`: population trials (packed configs × seeds 0 and 1), no trials.parquet."""
    root.mkdir(parents=True)
    sweep = {"space": GAMMA_SPACE, "metric": "hue_corr", "mode": "max", "seeds": 2, "pack": 2}
    (root / "sweep.yaml").write_text(yaml.safe_dump({"experiment": "autoencoder", "sweep": sweep}))
    for trial_id, (mode, _, diverged) in GAMMA.items():
        members = gamma_members(trial_id)
        config = trial_config(mode, 1.0, 0)
        del config["sweep_params"]
        config["members"] = [{"seed": seed, "schedule.scale.reg-polar": scale} for scale, seed, _ in members]
        make_trial(root / trial_id, config, [final for _, _, final in members], diverged_at=diverged)
    return root


def write_sweep(root: Path, rows: list[dict], space: dict) -> Path:
    """A results directory with sweep.yaml and trials.parquet only, for analysis that needs no
    trial directories; `rows` are members (their `member` index is added, per trial_id)."""
    root.mkdir(parents=True)
    sweep = {"space": space, "metric": "hue_corr", "mode": "max", "seeds": 10}
    (root / "sweep.yaml").write_text(yaml.safe_dump({"experiment": "autoencoder", "sweep": sweep}))
    frame = pd.DataFrame(rows)
    frame.insert(1, "member", frame.groupby("trial_id").cumcount())
    frame.to_parquet(root / "trials.parquet")
    return root
