"""Measuring trained variants on the test set: predictions per condition, metrics, spectra, heat maps."""
