"""The timeline: a dopesheet realized once into dense per-step arrays — one value
per property per step, the phases and the actions — so training loops index by step."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from latent_sweep.errors import UserError, where
from latent_sweep.spec.schedule import LOG_FLOOR, Dopesheet, Interp, Keyframe, Property

# Easing between two keys as a function of τ ∈ [0, 1].
_EASE: dict[Interp, Callable[[np.ndarray], np.ndarray]] = {
    "minjerk": lambda tau: tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2),
    "linear": lambda tau: tau,
    "step": lambda tau: (tau >= 1.0).astype(np.float64),  # hold, then jump at the next key
}


@dataclass(frozen=True)
class Phase:
    name: str
    start: int
    end: int  # inclusive


class Timeline:
    """Dense per-step values of every property, the phases and the actions of a dopesheet.

    `scale` multiplies whole property curves after interpolation (e.g. a sampled factor).
    """

    def __init__(self, dopesheet: Dopesheet, scale: Mapping[str, float] | None = None):
        self.dopesheet = dopesheet
        scale = dict(scale or {})
        unknown = [name for name in scale if name not in dopesheet.properties]
        if unknown:
            raise UserError(
                f"{where(dopesheet.source)}cannot scale {', '.join(repr(n) for n in unknown)}: expected "
                f"a schedule property, one of: {', '.join(dopesheet.props)}."
            )
        keyframes = dopesheet.keyframes
        self._length = keyframes[-1].step + 1
        self._values = {}
        for name, prop in dopesheet.properties.items():
            curve = _realize(prop, keyframes, self._length) * scale.get(name, 1.0)
            curve.flags.writeable = False
            self._values[name] = curve
        self.phases, self.phase_index = _phases(keyframes, self._length)
        self.phase_index.flags.writeable = False
        self.actions: dict[int, list[str]] = {}
        for k in keyframes:
            if k.actions:
                self.actions.setdefault(k.step, []).extend(k.actions)

    def __len__(self) -> int:
        return self._length

    @property
    def props(self) -> list[str]:
        return list(self._values)

    def values(self, name: str) -> np.ndarray:
        """The property's value at every step 0 … len-1 (read-only, float64)."""
        return self._values[name]

    def dense(self, name: str, total: int, default: float) -> np.ndarray:
        """`total` per-step values of a property — the last value held past the schedule's
        end — or `default` at every step when the schedule lacks the property."""
        if name not in self._values:
            return np.full(total, float(default))
        return self._values[name][self._held(total)]

    def phase_indices(self, total: int) -> np.ndarray:
        """`total` per-step phase indices (-1 outside any phase), the last held past the end."""
        return self.phase_index[self._held(total)]

    def _held(self, total: int) -> np.ndarray:
        """Steps 0 … total-1 as indices into the schedule: past its end, its last step."""
        return np.minimum(np.arange(total), self._length - 1)

    def table(self) -> pd.DataFrame:
        """One row per step: STEP, PHASE (missing outside any phase), one column per property."""
        # The trailing None is what phase index -1 picks.
        names = np.array([p.name for p in self.phases] + [None], dtype=object)
        return pd.DataFrame(
            {
                "STEP": np.arange(self._length, dtype=np.int64),
                "PHASE": names[self.phase_index],
                **self._values,
            }
        )


def _realize(prop: Property, keyframes: list[Keyframe], length: int) -> np.ndarray:
    keys: dict[int, float] = {}
    for k in keyframes:  # sorted by step, so a later row at the same step overwrites
        if prop.name in k.values:
            keys[k.step] = k.values[prop.name]
    ks = np.fromiter(keys, dtype=np.int64, count=len(keys))
    ys = np.fromiter(keys.values(), dtype=np.float64, count=len(keys))
    if prop.space == "log":
        ys = np.maximum(ys, LOG_FLOOR)
    if len(ks) == 1:
        return np.full(length, ys[0])
    s = np.arange(length)
    # Segment i spans keys i..i+1; clipping makes steps outside the keys hold the end values.
    i = np.clip(np.searchsorted(ks, s, side="right") - 1, 0, len(ks) - 2)
    t0, t1 = ks[i], ks[i + 1]
    w = _EASE[prop.interp](np.clip((s - t0) / (t1 - t0), 0.0, 1.0))
    a, b = ys[i], ys[i + 1]
    if prop.space == "log":
        mid = np.exp(np.log(a) + (np.log(b) - np.log(a)) * w)
    else:
        mid = a + (b - a) * w
    # Exact key values at the ends of each segment (and in holds), free of rounding.
    return np.where(w <= 0.0, a, np.where(w >= 1.0, b, mid))


def _phases(keyframes: list[Keyframe], length: int) -> tuple[list[Phase], np.ndarray]:
    starts: list[tuple[str, int]] = []
    for k in keyframes:
        if k.phase is None:
            continue
        if starts and starts[-1][1] == k.step:
            starts.pop()  # a later row at the same step wins
        if not starts or starts[-1][0] != k.phase:
            starts.append((k.phase, k.step))
    bounds = [start for _, start in starts] + [length]
    phases = [Phase(name, start, nxt - 1) for (name, start), nxt in zip(starts, bounds[1:], strict=True)]
    index = np.full(length, -1, dtype=np.int64)
    for j, phase in enumerate(phases):
        index[phase.start : phase.end + 1] = j
    return phases, index
