"""What to run, validated: trial configs (`config`, `trial`), schedules (`schedule`, `timeline`),
a trial's members (`population`), the `sweep:` block (`sweep_block`, `checks`), results
columns named by config paths (`columns`) and resource shares (`resources`).

Imports `store` and `scores` and never Ray, nor the engine, experiments, tune or analysis layers.
"""
