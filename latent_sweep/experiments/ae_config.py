"""The color autoencoder's typed config (validated once, at the boundary)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from latent_sweep.experiments.objectives import Anchor, Pin, TermConfig
from latent_sweep.spec.trial import Strict, TrialConfig


class Concept(Strict):
    """A noisy label: p = base^exponent · scale (`color`: proximity to corner `rgb`; `vibrant`: S·V)."""

    kind: Literal["color", "vibrant"]
    rgb: tuple[float, float, float] | None = None
    exponent: float = 1.0
    scale: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _rgb(self) -> Concept:
        if self.kind == "color":
            if self.rgb is None:
                raise ValueError("a `color` concept needs `rgb`, a corner of the RGB cube such as [1, 0, 0]")
            if any(c not in (0.0, 1.0) for c in self.rgb):
                raise ValueError(f"`rgb` must be a corner of the RGB cube (0s and 1s), got {list(self.rgb)}")
        return self


class LabelsConfig(Strict):
    mode: Literal["soft", "hard"] = "soft"
    concepts: dict[str, Concept] = {}


class DataConfig(Strict):
    hue_step_deg: float = Field(10.0, gt=0, le=180)
    n_saturation: int = Field(10, ge=2)
    n_value: int = Field(10, ge=2)
    batch_size: int = Field(64, ge=2)
    eval_grid: int = Field(8, ge=2, le=32)
    bias: bool = True
    # Phase name → its training set: hsv (the full cube), hues (S=V=1), primaries (the six
    # primary and secondary colors, all of them every step). Unlisted phases train on hsv.
    phases: dict[str, Literal["hsv", "hues", "primaries"]] = {}
    # When the schedule has this property, it reweights sampling each step (the 1.5 rule).
    fraction_property: str = "data-fraction"


class ModelConfig(Strict):
    hidden: list[Annotated[int, Field(ge=1)]] = Field([16], min_length=1)
    latent_dim: int = Field(4, ge=2)
    normalize: bool = False


class ScoresConfig(Strict):
    hue_plane: tuple[int, int] = (0, 1)
    neighbors_k: list[int] = [5, 10, 15]


class AutoencoderConfig(TrialConfig):
    experiment: Literal["autoencoder"] = "autoencoder"
    name: str = "autoencoder"
    data: DataConfig = DataConfig()
    labels: LabelsConfig = LabelsConfig()
    model: ModelConfig = ModelConfig()
    # Reconstruction MSE is weighted by this schedule property, or 1 when the schedule lacks it.
    recon_property: str = "loss-recon"
    terms: list[TermConfig] = []
    scores: ScoresConfig = ScoresConfig()

    @field_validator("terms")
    @classmethod
    def _unique_names(cls, terms: list) -> list:
        names = [t.name for t in terms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"term names must be unique (each is a schedule property); repeated: {dup}")
        return terms

    @model_validator(mode="after")
    def _references(self) -> AutoencoderConfig:
        labels = set(self.labels.concepts)
        for i, term in enumerate(self.terms):
            for label in term.affinities or {}:
                if label not in labels:
                    known = ", ".join(sorted(labels)) or "none defined"
                    raise ValueError(
                        f"terms[{i}] (`{term.name}`) has an affinity for unknown label `{label}`; "
                        f"labels are: {known}"
                    )
            if isinstance(term, Pin) and len(term.point) != self.model.latent_dim:
                raise ValueError(
                    f"terms[{i}].point must have latent_dim = {self.model.latent_dim} values, "
                    f"got {len(term.point)}"
                )
            if isinstance(term, Anchor) and term.affinities:
                raise ValueError(f"terms[{i}] is an anchor term, which acts on its reference set, not labels")
            for field in ("plane", "channels"):
                if getattr(term, field, None) is not None:
                    self._latent_indices(f"terms[{i}].{field}", list(getattr(term, field)))
        self._latent_indices("scores.hue_plane", list(self.scores.hue_plane))
        phases = {k.get("PHASE") for k in self.schedule.keyframes if k.get("PHASE")}
        for name in self.data.phases:
            if name not in phases:
                raise ValueError(
                    f"`data.phases` names phase `{name}`, which the schedule does not have: {sorted(phases)}"
                )
        return self

    def _latent_indices(self, path: str, indices: list[int]) -> None:
        """Latent dimensions a term or score reads: distinct, each in 0 … latent_dim − 1."""
        dim = self.model.latent_dim
        if not indices or any(not 0 <= i < dim for i in indices) or len(set(indices)) < len(indices):
            raise ValueError(
                f"`{path}` must list distinct latent dimensions in 0…{dim - 1} (latent_dim = {dim}), "
                f"but got {indices}"
            )
