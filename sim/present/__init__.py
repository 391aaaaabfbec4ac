"""Present: what a reader sees, made from finished runs (figures, the report, the parameter reference). Imports only from fitting and below."""
