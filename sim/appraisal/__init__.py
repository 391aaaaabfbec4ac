"""Appraisal: pricing a run's activity (costs) and appraising an intervention against its baseline (compare). A new cost goes in costs.py; imports only from the model, processes and state."""
