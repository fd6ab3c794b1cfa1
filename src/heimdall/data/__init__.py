"""Samples: the layout the model sees, shard I/O, splits, measurements, the DataModule."""
