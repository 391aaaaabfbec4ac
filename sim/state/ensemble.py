"""The calibration ensemble: parameter sets that each meet the calibration targets, one drawn per replicate.

A single fitted point hides how much the targets leave the parameters free. ``calibration/ensemble.parquet`` (made by
``sim ensemble``: a history match, then each candidate checked by its own runs) holds such sets, one row a member,
its values in columns ``value:<section>.<key>``; a scenario whose model differs from the baseline's (partner abuse
on) names its own file in ``run.ensemble``: the baseline's members checked again under it (``sim ensemble
--recheck``). With ``run.calibration = "ensemble"`` a replicate draws one member
(by its seed alone, so that every scenario of a comparison draws the same member in the same replicate) and takes
its values for the keys whose value comes from ``calibration/fitted.toml``; a key the scenario sets itself keeps the
scenario's value. ``run.calibration = "point"`` keeps the fitted values (the point estimate).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
#: the point fit, whose values members replace
FITTED = ROOT / "calibration" / "fitted.toml"
#: the baseline's members (``run.ensemble``), relative to the project's folder
BASELINE_ENSEMBLE = "calibration/ensemble.parquet"
#: the baseline's members
ENSEMBLE = ROOT / BASELINE_ENSEMBLE
#: prefix of the columns that hold a member's values
VALUE = "value:"
#: the counter-RNG stream a replicate's member is drawn from
MEMBER_STREAM = "calibration:ensemble_member"
#: the choices of run.calibration
CHOICES = ("ensemble", "point")


def ensemble_path(name: str) -> Path:
    """The members' file a scenario names in ``run.ensemble``: a path relative to the project's folder (the
    baseline's, calibration/ensemble.parquet, or a scenario's own, made by ``sim ensemble --recheck``)."""
    return ROOT / name


@dataclass(frozen=True)
class Ensemble:
    """Members' values for ``keys`` ("section.key"): ``values[m][j]`` is member m's value of ``keys[j]``."""

    keys: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    path: str

    def __len__(self) -> int:
        return len(self.values)

    def member(self, seed: int) -> int:
        """The member replicate ``seed`` draws: a function of the seed alone (common random numbers)."""
        from .rng import CounterRNG

        u = float(CounterRNG(seed).uniform(MEMBER_STREAM, 0, np.zeros(1, np.int64))[0])
        return min(int(u * len(self)), len(self) - 1)

    def restricted(self, keys) -> "Ensemble":
        """The same members, for ``keys`` only (in this ensemble's order)."""
        keep = [j for j, k in enumerate(self.keys) if k in set(keys)]
        return Ensemble(tuple(self.keys[j] for j in keep), tuple(tuple(v[j] for j in keep) for v in self.values), self.path)


def read_ensemble(path: Path = ENSEMBLE) -> Ensemble:
    """The members stored at ``path`` (OSError or ValueError if it cannot be read as an ensemble)."""
    stat = Path(path).stat()
    return _read(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int) -> Ensemble:  # (keyed by the file's time and size: a new file is reread)
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path).read()  # (not read_table: its datasets layer imports pandas, 0.8 s more for a refusal)
    keys = [c[len(VALUE):] for c in table.column_names if c.startswith(VALUE)]
    if not keys or table.num_rows == 0:
        raise ValueError("no members, or no value: columns")
    columns = [np.array(table.column(VALUE + k).to_pylist(), float) for k in keys]  # (to_numpy would import pandas)
    if not all(np.isfinite(c).all() for c in columns):
        raise ValueError("a member's value is missing or not finite")
    return Ensemble(tuple(keys), tuple(zip(*(c.tolist() for c in columns))), path)
