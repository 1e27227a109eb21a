"""What is trained: the color autoencoder (`autoencoder`, its config `ae_config`, its loss
terms `objectives`, its data `colors`) and the parametric projection (`projection`, `proj_data`).
Each hands the engine's loop a population.

Imports `engine`, `spec`, `scores` and `store`, never Ray, tune or analysis.
"""
