"""Dock panels: one panel per file (data, prior, training, sampling, log)."""
