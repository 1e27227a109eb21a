"""How one trial trains: the one training loop (`loop`), its step graphs (`graphs`), history
recording (`recording`), sessions (`session`), per-member random streams (`streams`), stacked
models (`models`) and their optimizer (`optim`); `registry` runs an experiment's trial, and `local`
trains without Ray.

Imports `spec`, `scores` and `store`, never Ray, tune or analysis.
"""
