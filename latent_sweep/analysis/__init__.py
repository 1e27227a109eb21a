"""Reading results directories: the results table (`results`), choosing its rows and columns
(`select`), comparisons and paired statistics (`compare`), parameter importance
(`importance`), output formats (`tables`) and plots (`plots_trial`, `plots_sweep`, sharing
`figures`).

Imports `spec`, `scores` and `store`; never Ray nor the tune, engine or experiments layers.
"""
