"""A sweep's space as Ray Tune takes it: each `sweep.space` leaf as a Tune domain, the
`param_space` of the run, and a packed sweep's configs drawn ahead (seeded by `search_seed`)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from ray import tune

from latent_sweep.spec.sweep_block import PACK, PARAMS, SEED_RANGE, Leaf, SampledSeed, SweepSpec, plain_value


def domain(leaf: Leaf):
    """The Tune domain of one `sweep.space` leaf."""
    if leaf.kind == "grid":
        return tune.grid_search(list(leaf.args))
    if leaf.kind == "choice":
        return tune.choice(list(leaf.args))
    return getattr(tune, leaf.kind)(*leaf.args)


def param_space(spec: SweepSpec) -> dict:
    """Tune's `param_space`: the leaves' domains under `params` (and the seed where sampled or
    repeated), or, packed, the packs as one grid."""
    if spec.block.pack > 1:
        return {PACK: tune.grid_search(packs(spec))}
    params = {path: domain(leaf) for path, leaf in spec.space.items()}
    if isinstance(spec.block.seeds, SampledSeed):
        params["seed"] = tune.randint(0, SEED_RANGE)
    elif spec.seed_repeats > 1 and not spec.seed_population and not spec.uses_repeater:
        params["seed"] = tune.grid_search(list(range(spec.seed_repeats)))
    return {PARAMS: params}


def sampled_configs(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every config of a packed sweep, drawn here (seeded by `search_seed`): `num_samples`
    draws of the random leaves (and of the seed when sampled), each crossed with the grid."""
    rng = np.random.default_rng(spec.block.search_seed)
    domains = {p: domain(leaf) for p, leaf in spec.space.items() if leaf.kind != "grid"}
    grid = {p: leaf.args for p, leaf in spec.space.items() if leaf.kind == "grid"}
    configs = []
    for _ in range(spec.block.num_samples):
        drawn = {p: plain_value(d.sample(random_state=rng)) for p, d in domains.items()}
        if isinstance(spec.block.seeds, SampledSeed):
            drawn["seed"] = int(rng.integers(SEED_RANGE))
        for combo in itertools.product(*grid.values()):
            values = {**drawn, **dict(zip(grid, combo, strict=True))}
            configs.append({p: values[p] for p in [*spec.space, "seed"] if p in values})
    return configs


def packs(spec: SweepSpec) -> list[list[dict[str, Any]]]:
    """The packed sweep's configs in trials of `pack` each."""
    configs, size = sampled_configs(spec), spec.block.pack
    return [configs[i : i + size] for i in range(0, len(configs), size)]
