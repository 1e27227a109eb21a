"""Sweeps on Ray Tune: running and resuming them (`sweep`), the trainable (`trainable`), search
algorithms and schedulers (`search`, `study`), the trials table (`trials`), the end-of-run report
(`report`), trackers (`trackers`, `trackers_mlflow`) and repair of damaged results (`recovery`).

The only layer that imports Ray. It may import every layer below it: analysis, engine,
experiments, spec, scores, store.
"""
