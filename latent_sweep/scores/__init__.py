"""The ground: what a latent space scores. Neighbor preservation (`neighbors`, member-batched
in `_scan`), hue ordering and the other geometric scores (`geometry`), the statistics over
seeds (`stats`), what a trial reports over its members (`summary`), Pareto fronts
(`pareto`) and what each experiment declares about its scores
(`declarations`).

Imports only `latent_sweep.errors`, torch, numpy and scipy; no other layer.
"""
