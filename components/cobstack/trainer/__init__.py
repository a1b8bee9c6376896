"""The model trainer: one more consumer of the book stream (see docs/trainer.md).

Torch is imported only by the modules that train or infer, so `signals` (read by the
executor) and the pure data modules stay importable without the `train` extra.
"""
