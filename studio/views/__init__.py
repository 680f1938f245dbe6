"""Plots: one view per file (curves, live trajectory, loss, prior spectrum, schedule)."""
