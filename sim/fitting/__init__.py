"""Fitting: calibrating free parameters to, and validating the model against, the targets in the repository's calibration/ folder. Imports only from runs and below."""
