"""The ground: files on disk and in object storage. The names of every file and folder of a
results or trial directory (`layout`), whole-file writes (`atomic`), the Parquet histories
(`history`), `s3://`-style results (`remote`) and the sweep lock (`lock`).

Imports only `latent_sweep.errors` and third-party libraries; no other layer (enforced by
import-linter, see `.importlinter`).
"""
