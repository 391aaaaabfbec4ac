"""Decision measures from a comparison's Monte Carlo replicates: is it worth it, what effect would it need to break
even and how likely is that, what is information worth, and how the answer moves with the price of a place.

Everything here reads the per-replicate table (``replicates.csv``: the appraisal's ``appraisal:*`` columns and the
inputs drawn for each replicate, ``parameter:section.key``) and, for prior probabilities, the inputs'
distributions. The value of information follows the regression method of Strong, Oakley & Brennan (2014, Medical
Decision Making 34(3)): the expected net benefit given a group of inputs is estimated by regressing each
replicate's NPV on those inputs, which also removes the chance in single replicates. The decision is between
funding the intervention (net benefit = its NPV) and not (0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..state.params import Dist
from ..state.scenario import DRAW_TAIL

NPV = "appraisal:npv"

#: the inputs whose break-even value a commissioner asks about: parameter column -> (channel, which way helps)
BREAK_EVEN_INPUTS = {
    "parameter:intervention.offending_rr_at_full_dose": ("the offender's offending (relative hazard at full dose)", -1),
    "parameter:intervention.child_rr_at_full_dose": ("the children's offending (relative hazard at full dose)", -1),
    "parameter:intervention.need_effect_scale": ("the needs channel (share of the central need effects)", +1),
}

#: inputs grouped by the evidence that would inform them (value of information is reported per group)
GROUPS = {
    "the offender's offending": ("intervention.offending_rr_at_full_dose",),
    "the children's offending": ("intervention.child_rr_at_full_dose",),
    "the family's needs": ("intervention.need_effect_scale",),
    "supervision (detection, recall)": ("intervention.detection_rr_at_full_dose", "intervention.recall_rr_at_full_dose"),
    "dose-response and decay": ("intervention.dose_scale_hours", "intervention.effect_decay_months"),
    "engagement and drop-out": ("intervention.p_engage", "intervention.p_dropout_per_month"),
    "costs": ("intervention.cost_per_keyworker_hour_gbp", "intervention.treatment_referral_share", "costs."),
}


def varying_inputs(rows: pd.DataFrame) -> list[str]:
    """The ``parameter:*`` columns that vary over the replicates."""
    return [c for c in rows.columns if c.startswith("parameter:") and rows[c].nunique() > 1]


def _design(rows: pd.DataFrame, columns: list[str], quadratic: bool) -> np.ndarray:
    """Intercept, each input standardised, and (``quadratic``) its square: a smooth main-effects regression."""
    x = rows[columns].to_numpy(float)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    parts = [np.ones((len(rows), 1)), x] + ([x**2 - 1] if quadratic else [])
    return np.column_stack(parts)


def expected_npv_given(rows: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each replicate's expected NPV given only ``columns`` (least squares on their linear and squared terms, or
    linear only when replicates are too few): the regression step of Strong, Oakley & Brennan (2014)."""
    y = rows[NPV].to_numpy(float)
    if not columns:
        return np.full(len(y), y.mean())
    quadratic = len(rows) > 4 * (2 * len(columns) + 1)
    if len(rows) <= len(columns) + 2:
        return np.full(len(y), y.mean())
    X = _design(rows, columns, quadratic)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return X @ coef


def value_of_information(rows: pd.DataFrame) -> pd.DataFrame:
    """Expected value of perfect information (all inputs given as distributions; at least each group's) and of
    partial perfect information per group of inputs (``GROUPS``; inputs in no group are their own), in GBP of
    present value: the most a commissioner should pay for research that removed that uncertainty before deciding.
    Per group: ``mean(max(g, 0)) - max(mean(g), 0)`` with g the NPV expected given the group."""
    inputs = varying_inputs(rows)
    groups: dict[str, list[str]] = {}
    for col in inputs:
        key = col.removeprefix("parameter:")
        name = next((g for g, prefixes in GROUPS.items() if any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes)), key)
        groups.setdefault(name, []).append(col)

    def evppi(columns):
        g = expected_npv_given(rows, columns)
        return float(np.maximum(g, 0).mean() - max(g.mean(), 0))

    parts = [{"group": name, "inputs": len(cols), "value_gbp": evppi(cols)} for name, cols in groups.items()]
    # information on every input includes that on each group: with few replicates the regression on all inputs
    # can come out below a group's, so the EVPI is the larger of the two estimates
    whole = max([evppi(inputs)] + [p["value_gbp"] for p in parts])
    return pd.DataFrame([{"group": "all uncertain inputs (EVPI)", "inputs": len(inputs), "value_gbp": whole}, *parts])


#: fewer replicates than this give first-order indices too noisy to show
MIN_REPLICATES_SOBOL = 30


def first_order_indices(rows: pd.DataFrame, outcome: str = NPV, resamples: int = 200) -> pd.DataFrame:
    """Each uncertain input's first-order Sobol index for ``outcome``: the share of its variance over the replicates
    that the input explains on its own, with a 95% bootstrap interval. Estimated from the Monte Carlo replicates as
    they are (their inputs are independent draws), by SALib's given-data estimator (``SALib.analyze.delta``: Plischke,
    Borgonovo & Smith 2013), beside the rank regression of the report; a Saltelli design would need thousands of runs.
    Empty with fewer than ``MIN_REPLICATES_SOBOL`` replicates or no varying input. Sorted, largest first."""
    import contextlib
    import io
    import warnings

    from SALib.analyze import delta

    inputs = varying_inputs(rows)
    y = rows[outcome].to_numpy(float)
    if len(rows) < MIN_REPLICATES_SOBOL or not inputs or np.nanstd(y) == 0:
        return pd.DataFrame(columns=["input", "s1", "s1_low", "s1_high"])
    x = rows[inputs].to_numpy(float)
    problem = {"num_vars": len(inputs), "names": [f"x{i}" for i in range(len(inputs))],  # (SALib refuses some suffixes)
               "bounds": [[float(a), float(b)] for a, b in zip(x.min(0), x.max(0))]}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():  # (its notes on bins)
        warnings.simplefilter("ignore")
        result = delta.analyze(problem, x, y, num_resamples=resamples, conf_level=0.95, seed=1, print_to_console=False)
    s1, half = np.asarray(result["S1"], float), np.asarray(result["S1_conf"], float)
    table = pd.DataFrame({"input": [c.removeprefix("parameter:") for c in inputs], "s1": s1,
                          "s1_low": np.maximum(s1 - half, 0.0), "s1_high": s1 + half})
    return table.sort_values("s1", ascending=False, ignore_index=True)


def break_even(rows: pd.DataFrame, priors: dict[str, Dist]) -> pd.DataFrame:
    """For each channel input drawn in the replicates (``BREAK_EVEN_INPUTS``): the value at which the expected NPV
    is zero, all other inputs at their means (a linear regression of NPV on every varying input), and the
    probability the input's distribution gives to an effect at least that strong. Blank where the regression cannot
    tell the input's slope from zero (|t| < 2), and where the value lies beyond what the distribution can draw
    (then the probability is 1 if it breaks even at any value the distribution draws, 0 if at none)."""
    inputs = varying_inputs(rows)
    out = []
    if len(rows) <= len(inputs) + 2:
        return pd.DataFrame(columns=["input", "channel", "break_even", "prior_probability", "slope_t"])
    X = _design(rows, inputs, quadratic=False)
    y = rows[NPV].to_numpy(float)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    sigma2 = resid @ resid / max(len(y) - X.shape[1], 1)
    se = np.sqrt(np.diag(sigma2 * np.linalg.pinv(X.T @ X)))
    for col, (channel, helps) in BREAK_EVEN_INPUTS.items():
        if col not in inputs:
            continue
        k = 1 + inputs.index(col)
        x = rows[col].to_numpy(float)
        slope = coef[k] / x.std()  # GBP per unit of the input
        t = coef[k] / se[k] if se[k] > 0 else 0.0
        value, prob = np.nan, np.nan
        dist = priors.get(col.removeprefix("parameter:"))
        if abs(t) >= 2 and slope * helps > 0:
            value = x.mean() - y.mean() / slope
            if dist is not None:
                prob = dist.cdf(value) if helps < 0 else 1 - dist.cdf(value)
                if not dist.ppf(DRAW_TAIL) <= value <= dist.ppf(1 - DRAW_TAIL):
                    value = np.nan  # beyond what the distribution draws: it pays at any value (1) or at none (0)
                    prob = float(prob > 0.5)
        out.append({"input": col.removeprefix("parameter:"), "channel": channel, "break_even": value, "prior_probability": prob,
                    "slope_t": t})
    return pd.DataFrame(out)


def acceptability(rows: pd.DataFrame, points: int = 41) -> pd.DataFrame:
    """The chance that benefits exceed costs if a family's place cost ``cost_per_family`` (present value, from
    nothing to three times the scenario's own): per replicate, savings minus that cost times its families. The
    scenario's own cost per family is where the curve meets the headline chance."""
    families = rows["intervention:iv_families_started"].to_numpy(float)
    savings = rows["appraisal:total_savings"].to_numpy(float)
    own = float(rows["appraisal:intervention_cost"].sum() / families.sum()) if families.sum() > 0 else np.nan
    grid = np.linspace(0, 3 * own, points) if own == own else np.zeros(1)
    chance = [(savings - c * families > 0).mean() for c in grid]
    return pd.DataFrame({"cost_per_family": grid, "chance_benefits_exceed_costs": chance, "scenario_cost_per_family": own})


def priors_from_manifest(parameters: dict) -> dict[str, Dist]:
    """{"section.key": Dist} for every input a folder's manifest records as a distribution (money included)."""
    out = {}
    for section, values in parameters.items():
        if not isinstance(values, dict):
            continue
        for key, v in values.items():
            v = v["value"] if isinstance(v, dict) and "price_year" in v else v
            if isinstance(v, dict) and "dist" in v:
                out[f"{section}.{key}"] = Dist.from_dict(v)
    return out
