"""Subgroup datasets: SynthFaces, real face-dataset loaders, splits and per-subgroup test loaders."""
