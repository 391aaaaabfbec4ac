"""The commissioner's report: one self-contained HTML page (figures embedded, prints cleanly to PDF) plus the PNG
figures, written into a run folder by ``sim report DIR`` and at the end of ``compare`` and ``sweep``."""

from __future__ import annotations

import base64
import html
import json
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from .. import metrics
from ..fitting.calibration import CALIBRATION_DIR, load_targets, mc_standard_error, steadiness, steadiness_summary
from ..runs.outdir import read_manifest
from ..state.params import Dist
from ..state.scenario import ScenarioError, documented_values
from . import figures as F
from .paramdoc import GRADES, evidence_grade

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.25rem; border-bottom: 2px solid #0072B2; padding-bottom: 0.2rem; margin-top: 2rem; }
.sub { color: #555; margin-top: 0; }
.headline { display: grid; grid-template-columns: repeat(auto-fill, minmax(13rem, 1fr)); gap: 0.7rem; margin: 1rem 0; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.6rem 0.8rem; break-inside: avoid; }
.card .v { font-size: 1.35rem; font-weight: bold; color: #0072B2; } .card .l { font-size: 0.85rem; color: #333; } .card .i { font-size: 0.78rem; color: #666; }
table { border-collapse: collapse; font-size: 0.82rem; margin: 0.5rem 0; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.4rem; text-align: left; vertical-align: top; } td.n { text-align: right; white-space: nowrap; }
img { max-width: 100%; break-inside: avoid; } figure { margin: 1rem 0; break-inside: avoid; } figcaption { font-size: 0.85rem; color: #444; }
.note { background: #f4f8fb; border-left: 4px solid #56B4E9; padding: 0.5rem 0.8rem; font-size: 0.9rem; }
@media print { body { max-width: none; margin: 0; } h2 { break-after: avoid; } a { color: inherit; text-decoration: none; } }
"""


def discount_settings(manifest: dict) -> SimpleNamespace:
    """The discount rates a comparison folder was appraised with (from its manifest)."""
    c = manifest["parameters"]["costs"]

    def value(key, default):
        v = c.get(key, default)
        return float(v["value"] if isinstance(v, dict) and "value" in v else v)

    rate = value("discount_rate", 0.035)
    return SimpleNamespace(discount_rate=rate, discount_rate_after_30_years=value("discount_rate_after_30_years", rate))


def money(v: float) -> str:
    if v != v:
        return "n/a"
    sign = "-" if v < 0 else ""
    v = abs(v)
    return f"{sign}£{v / 1e6:,.1f}m" if v >= 1e6 else f"{sign}£{v:,.0f}"


def num(v: float, digits: int = 0) -> str:
    return "n/a" if v != v else f"{v:,.{digits}f}"


def _img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _figure(path: Path, caption: str) -> str:
    return f'<figure><img src="{_img(path)}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _table(df: pd.DataFrame, numeric: set[str] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{html.escape(str(v))}</td>' if c in numeric else f"<td>{html.escape(str(v))}</td>" for c, v in row.items()) + "</tr>"
        for _, row in df.iterrows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(value: str, label: str, interval: str = "") -> str:
    return f'<div class="card"><div class="v">{value}</div><div class="l">{html.escape(label)}</div><div class="i">{html.escape(interval)}</div></div>'


def _plain_scenario(p: dict) -> str:
    iv, costs = p["intervention"], p["costs"]

    def val(x):
        """A plain value; for a money or documented value its amount; for a distribution its central value."""
        if isinstance(x, dict) and "value" in x:
            return val(x["value"])
        if isinstance(x, dict) and "dist" in x:
            return x.get("mode", x.get("mean", (x.get("low", 0) + x.get("high", 0)) / 2))
        return x

    def show(x):
        if isinstance(x, dict) and "price_year" in x:  # money
            v = x["value"]
            return show(v) if isinstance(v, dict) else money(v)
        if isinstance(x, dict) and "dist" in x:
            return f"uncertain: {Dist.from_dict(x)}"
        if isinstance(val(x), (list, tuple)):
            return ", ".join(f"{v:g}" for v in val(x))
        return f"{val(x):g}" if isinstance(val(x), (int, float)) else str(val(x))

    routes = [r for r, on in (("leaving custody", iv["eligible_on_release"]), ("starting a community or suspended-sentence order", iv["eligible_on_order_start"])) if on]
    kids = " who have a dependent child" if iv["require_dependent_children"] else ""
    hours = val(iv["intensity_hours_per_month"])
    per_hour = val(iv["cost_per_keyworker_hour_gbp"])
    per_family_year = hours * per_hour * 12 if isinstance(hours, (int, float)) and isinstance(per_hour, (int, float)) else float("nan")
    return (
        f"<p><b>Who is eligible:</b> adults {' or '.join(routes)} with at least {show(iv['min_convictions'])} convictions "
        f"(the current one included){kids}, referred {show(iv['referral_delay_months'])} month(s) later; {show(iv['coverage'])} of the eligible are referred.</p>"
        f"<p><b>Capacity and intensity:</b> up to {show(iv['capacity_families_per_year'])} families start a year (a referral lapses after "
        f"{show(iv['max_wait_months'])} months without a place); an engaged family (probability {show(iv['p_engage'])}) gets "
        f"{show(iv['intensity_hours_per_month'])} keyworker hours a month for {show(iv['duration_months'])} months, unless it drops out "
        f"({show(iv['p_dropout_per_month'])} a month) or the offender returns to custody.</p>"
        f"<p><b>Cost:</b> set-up {show(iv['setup_cost_gbp'])}, running {show(iv['fixed_cost_per_year_gbp'])} a year, "
        f"{show(iv['cost_per_keyworker_hour_gbp'])} a keyworker hour (about {money(per_family_year)} a family-year at this intensity), "
        f"{costs['base_price_year']} prices, optimism bias uplift {show(costs['optimism_bias_intervention'])}.</p>"
        f"<p><b>Effects at full dose</b> (each may be none, and the first two may harm): the offender's offending × {show(iv['offending_rr_at_full_dose'])}; "
        f"the children's × {show(iv['child_rr_at_full_dose'])}; each need's monthly chance of resolving × 1 + (m − 1) × s, with m = "
        f"{show(iv.get('need_resolution_rr_at_full_dose', 'n/a (not in this folder)'))} for {', '.join(str(n).replace('_', ' ') for n in val(p['needs']['names']))} "
        f"and s {show(iv.get('need_effect_scale', 'n/a (not in this folder)'))}; while in the intervention an offence is proven × {show(iv.get('detection_rr_at_full_dose', 'n/a (not in this folder)'))} as often "
        f"and recall on licence comes × {show(iv.get('recall_rr_at_full_dose', 'n/a (not in this folder)'))} as often. Dose at this intensity 1 − exp(−hours / "
        f"{show(iv['dose_scale_hours'])}); the effects on offending fade over {show(iv['effect_decay_months'])} months after the family leaves.</p>"
    )


def _assumptions(manifest: dict) -> str:
    """The intervention and cost values the run used (from the manifest, so --set overrides show), with unit,
    price year and source from the scenario files."""
    try:
        docs = documented_values(manifest.get("scenario_file", ""))
    except (ScenarioError, OSError):
        docs = {}
    rows = []
    for section in ("intervention", "costs"):
        for key, value in manifest["parameters"][section].items():
            d = docs.get(f"{section}.{key}", {})
            if isinstance(value, dict) and "price_year" in value:
                value = value["value"]
            if isinstance(value, dict) and "dist" in value:
                value = str(Dist.from_dict(value))
            elif isinstance(value, list):
                value = ", ".join(f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in value)
            rows.append({"key": f"{section}.{key}", "value": value, "unit": d.get("unit", ""), "price year": d.get("price_year", ""),
                         "evidence": evidence_grade(d.get("source", "")), "source": d.get("source", "")})
    table = pd.DataFrame(rows)
    counts = table["evidence"].value_counts()
    summary = "; ".join(f"{counts[g]} {g}" for g in GRADES if g in counts)
    return (f"<p>Evidence grades of these {len(table)} inputs: {html.escape(summary)}. <i>Published</i>: a publication read, with its "
            "year, or an official body's series; <i>secondary</i>: read as quoted elsewhere; <i>calibrated</i>: fitted to the "
            "targets; <i>assumption</i>: a modelling judgement with a plausible range; <i>design</i>: a choice of the proposal or the "
            f"scenario.</p>{_table(table)}")


def _calibration_section(folder: Path, rows: pd.DataFrame | None) -> str:
    """Simulated vs targets: the recorded calibration check if there is one, else the baseline arm's rates."""
    fitted = CALIBRATION_DIR / "fitted.toml"
    record = tomllib.loads(fitted.read_text()).get("calibration", {}) if fitted.exists() else {}
    achieved = record.get("achieved", {})
    targets = {t.name: t for t in load_targets()}
    table = []
    if achieved:
        for name, a in achieved.items():
            t = targets.get(name)
            if t and "p05" in a:
                table.append({"target": name, "value": t.value, "lower": t.lower, "upper": t.upper, "simulated": a["simulated"],
                              "sim_p05": a["p05"], "sim_p95": a["p95"], "pass": t.lower <= a["simulated"] <= t.upper})
        note = f"From the calibration record in calibration/fitted.toml ({record.get('date', 'date unknown')}); rerun with <code>sim validate</code>."
    elif rows is not None:
        for name, metric in (("prison_one_year_proven_reoffending", "baseline:proven_reoffending_prison"),
                             ("probation_one_year_proven_reoffending", "baseline:proven_reoffending_probation")):
            t, v = targets[name], rows[metric].dropna()
            se = mc_standard_error(v)
            table.append({"target": name, "value": t.value, "lower": t.lower, "upper": t.upper, "simulated": v.mean(),
                          "sim_p05": v.mean() - 1.645 * se, "sim_p95": v.mean() + 1.645 * se, "pass": t.lower <= v.mean() <= t.upper})
        note = "The baseline arm of this comparison against the short-run targets; <code>sim validate</code> checks them all."
    if not table:
        return "<p>No calibration record.</p>"
    df = pd.DataFrame(table)
    path = F.save(F.calibration_figure(df), folder / "figures" / "calibration.png")
    return f'<p class="note">{note}</p>' + _figure(path, "Calibration: simulated (mean and 90% Monte Carlo interval) against published targets (band).")


def _steadiness_section(folder: Path, series: pd.DataFrame) -> str:
    """The baseline arm's steady series relative to their first year (stocks: their first month), the replicates' mean
    path over their mean start with bands of single replicates, and in words which of them drift."""
    base = series[series["scenario"] == "baseline"]
    rows = [{"metric": metric, "seed": rep, "value": v}
            for rep, ts in base.groupby("replicate")
            for metric, v in metrics.steady_metrics(ts.sort_values("month").reset_index(drop=True), "baseline").items()]
    table = steadiness(pd.DataFrame(rows, columns=["metric", "seed", "value"]))
    if table.empty or table["year"].max() < 1:
        return "<p>The run is shorter than two years: too short to judge.</p>"
    path = F.save(F.steadiness_figure(table), folder / "figures" / "steadiness.png")
    summary = steadiness_summary(table)
    drifting = summary[~summary["steady"]]
    words = ("Every series stays within its tolerance: the differences above are measured against a steady baseline."
             if drifting.empty else
             "<b>The baseline is not steady</b>, so part of any difference is measured against a changing background: "
             + "; ".join(f"{F.STEADY_LABELS.get(r['series'], r['series'])}: {r['worst_value']:.2f} x the start"
                         f"{' ' + r['worst_judged'] if r['worst_judged'] != 'level' else ''} in year {r['worst_year'] + 1} of {r['years']} "
                         f"(expected {r['worst_expected']:.2f} +-{r['tolerance']:.0%}"
                         + (f"; per head of the {metrics.PER_HEAD[r['series']]}, furthest {r['worst_per_head']:.2f}"
                            if pd.notna(r.get("worst_per_head")) else "") + f"; {r['why']})"
                         for _, r in drifting.iterrows()) + ". The README's Calibration section says why and what is being done.")
    return f'<p class="note">{words}</p>' + _figure(
        path, "The baseline arm's series relative to the start (flows: their first year; stocks: their first month, as in sim validate): the "
              "replicates' mean path over their mean start and 5-95% of single replicates; dashed: the same per head of the children or adults; green: no "
              "change (the population: its projected growth) and the tolerance (calibration/steadiness.toml); each series is "
              "judged per head of the children or adults, as Essex's population grows.")


#: names of a comparison's metrics in words (the rest: underscores to spaces)
LABELS = {"offences": "offences", "convictions": "convictions", "proven_reoffending_prison": "one-year proven reoffending, prison cohort",
          "proven_reoffending_probation": "one-year proven reoffending, probation cohort", "custody_months": "prisoner-months",
          "children_convicted": "convictions of children", "first_time_entrants": "first-time entrants",
          "child_first_time_entrants": "children entering the CJS", "iv_families_started": "families starting the intervention",
          "iv_family_months": "family-months in the intervention",
          "da_incidents": "domestic-abuse incidents", "da_victim_years": "victim-years of domestic abuse",
          "da_children_exposed": "children exposed to domestic abuse", "hub_victims_started": "victims starting DA hub support", "npv": "net present value", "bcr": "benefit-cost ratio",
          "npv_optimism_bias": "net present value with optimism bias on benefits", "bcr_optimism_bias": "benefit-cost ratio with optimism bias on benefits",
          "dwp": "DWP", "nhs": "NHS", "wider_economy": "wider economy", "victims_and_society": "victims and society"}


def _label(metric: str) -> str:
    """``savings_by_agency:nhs`` -> "savings: NHS", ``appraisal:npv`` -> "net present value", ..."""
    group, _, name = metric.rpartition(":")
    words = LABELS.get(name, name.replace("_", " "))
    return {"savings_by_agency": f"savings: {words}", "savings_by_kind": f"savings, {words}"}.get(group, words)


def _channels_section(folder: Path) -> str:
    """Where the benefit comes from (``sim compare --by-channel``): the figure and, in words, which channel carries
    the crimes avoided and the money, and what its effect rests on."""
    path = folder / "channels.csv"
    if not path.exists():
        return ('<p class="note">Not decomposed: run <code>sim compare ... --by-channel</code> to see how much of the benefit comes '
                "through each channel (the offender's own offending, the children's, the family's needs, supervision).</p>")
    table = pd.read_csv(path)
    fig = F.save(F.channels_figure(table), folder / "figures" / "channels.png")
    crimes = table[(table["metric"] == "appraisal:offences_avoided") & ~table["channel"].isin(["total", "interaction"])]
    npv = table[table["metric"] == "appraisal:npv"].set_index("channel")
    top = crimes.sort_values("mean", ascending=False).iloc[0]
    share = f"{num(100 * top['share_of_total'])}% of the crimes avoided come" if top["share_of_total"] == top["share_of_total"] else "The most crimes avoided come"
    words = [f"{share} through the {F.CHANNEL_LABELS[top['channel']]} channel (mean {num(top['mean'])}, "
             f"90%: {num(top['p05'])} to {num(top['p95'])} crimes)."]
    for name, row in crimes.set_index("channel").iterrows():
        if row["p05"] <= 0 <= row["p95"]:
            words.append(f"The {F.CHANNEL_LABELS[name]} channel's contribution is not distinguishable from none (90% interval includes zero).")
    if "cost" in npv.index:
        gains = npv.drop(["cost", "treatment", "interaction", "total"], errors="ignore")["mean"].sum()
        paid = -npv.loc["cost", "mean"] - (npv.loc["treatment", "mean"] if "treatment" in npv.index else 0.0)
        words.append(f"Together the channels return {money(gains)} (and {money(npv.loc['interaction', 'mean'])} more between them) against "
                     f"a cost of {money(paid)}, the NHS treatment referrals cause included (present values).")
    rows = table.assign(channel=table["channel"].map(F.CHANNEL_LABELS), share=[num(100 * v) + "%" if v == v else "" for v in table["share_of_total"]])
    for c in ("mean", "p05", "p95"):
        rows[c] = [(money(v) if u.startswith("GBP") else num(v)) for v, u in zip(rows[c], rows["unit"])]
    rows = rows[["label", "channel", "mean", "p05", "p95", "share"]]
    return (f"{_figure(fig, 'Each channel: the full intervention minus the same replicates with that channel at no effect (common random numbers); mean and 90% interval. Interaction: what the channels give together beyond their sum.')}"
            f"<p>{' '.join(html.escape(w) for w in words)}</p>{_table(rows, {'mean', 'p05', 'p95', 'share'})}")


def verdict_word(chance: float) -> str:
    """"likely", "unlikely" or "uncertain" (to be worth it), from the share of replicates whose NPV is positive."""
    return "likely" if chance >= 0.7 else "unlikely" if chance <= 0.3 else "uncertain"


def decision_words(rows: pd.DataFrame, priors: dict, prior_name: str = "the evidence-weighted prior", sobol: bool = True) -> list[str]:
    """Is it worth it? In sentences, from a comparison's replicates: the chance, the NPV, the effect and the price at
    which it would break even (with the chance the evidence, ``priors``, gives them), what information would be worth
    and (with ``sobol``: seconds of bootstrap) which input explains most of the spread. Shared by the report and the
    app's headline."""
    from ..appraisal import decision as D

    npv = rows["appraisal:npv"]
    chance = float((npv > 0).mean())
    words = [f"On the evidence as weighted here, it is {verdict_word(chance)} to be worth it: benefits exceed costs in {100 * chance:.0f}% of "
             f"{len(rows)} replicates (NPV {money(npv.mean())}, 90%: {money(npv.quantile(0.05))} to {money(npv.quantile(0.95))})."]
    words += _optimism_bias_words(rows)
    be = D.break_even(rows, priors)
    for _, r in be.iterrows():
        if r["break_even"] == r["break_even"]:
            reach = f"; {prior_name} gives an effect at least that strong a {100 * r['prior_probability']:.0f}% chance" if r["prior_probability"] == r["prior_probability"] else ""
            words.append(f"It would break even (all other inputs at their means) if {r['channel']} reached {r['break_even']:.2f}{reach}.")
        elif r["prior_probability"] == 1:
            words.append(f"Through {r['channel'].split(' (')[0]} it would break even at any effect the evidence allows (all else at its mean).")
        elif r["prior_probability"] == 0:
            words.append(f"No effect on {r['channel'].split(' (')[0]} that the evidence allows would make it break even (all else at its mean).")
    unclear = [r["channel"].split(" (")[0] for _, r in be.iterrows() if r["break_even"] != r["break_even"] and r["prior_probability"] != r["prior_probability"]]
    if unclear:
        words.append(f"How much {' and '.join(unclear)} would have to change to break even cannot be read from these replicates (the NPV does not "
                     "depend on it clearly enough).")
    families = rows["intervention:iv_families_started"].sum()
    curve = D.acceptability(rows)
    if families > 0:
        fair = rows["appraisal:total_savings"].sum() / families
        words.append(f"A family's place costs {money(curve['scenario_cost_per_family'].iloc[0])} (present value); "
                     + (f"benefits match costs on average at {money(fair)} a place." if fair > 0 else
                        "even a free place would not pay: on average the programme's effects cost more than they save, "
                        f"{money(-fair)} a family."))
    voi = D.value_of_information(rows)
    top = voi.iloc[1:].sort_values("value_gbp", ascending=False)
    if len(top) and voi["value_gbp"].iloc[0] > 0:
        words.append(f"Perfect information on every uncertain input would be worth about {money(voi['value_gbp'].iloc[0])} to this decision "
                     f"(EVPI); most of it lies in {top['group'].iloc[0]} ({money(top['value_gbp'].iloc[0])}): evidence on that is what is "
                     f"worth buying{' (indicative: fewer than 200 replicates)' if len(rows) < 200 else ''}.")
    s1 = D.first_order_indices(rows) if sobol else ()
    if len(s1):
        lead = s1.iloc[0]
        words.append(f"Of the NPV's spread over the replicates, {lead['input']} alone explains the most: about {num(100 * lead['s1'])}% "
                     f"(first-order Sobol index, 95%: {num(100 * lead['s1_low'])}-{num(100 * lead['s1_high'])}%; SALib, from the "
                     "replicates as drawn).")
    return words


def _optimism_bias_words(rows: pd.DataFrame) -> list[str]:
    """The NPV with the Green Book's optimism bias on benefits too (``appraisal:npv_optimism_bias``), if any is set."""
    if "appraisal:npv_optimism_bias" not in rows:
        return []
    gains = rows["appraisal:total_savings"] + rows["appraisal:referred_treatment_cost"]  # as appraise cuts them
    share = ((rows["appraisal:npv"] - rows["appraisal:npv_optimism_bias"]) / gains)[gains > 0]
    if not len(share) or share.max() <= 1e-12:
        return []
    npv = rows["appraisal:npv_optimism_bias"]
    return [f"With its benefits also reduced by {100 * share.median():.0f}% for optimism bias, as an appraisal without this "
            f"uncertainty analysis would do for evidence of this grade (the effect priors above already carry most of that "
            f"doubt, so this is the cautious reading), benefits would exceed costs in {100 * (npv > 0).mean():.0f}% of replicates "
            f"(NPV {money(npv.mean())}, 90%: {money(npv.quantile(0.05))} to {money(npv.quantile(0.95))})."]


def _calibration_words(manifest: dict) -> str:
    """Which calibrated values the replicates ran with: the ensemble's members (calibration uncertainty in every
    interval) or the single point fit; and a warning when the two arms differ in that."""
    ensemble = manifest.get("calibration_ensemble")
    choices = [manifest.get("baseline", {}).get("parameters", {}).get("run", {}).get("calibration"),
               manifest.get("parameters", {}).get("run", {}).get("calibration")]
    if None not in choices and choices[0] != choices[1]:
        return (f"The baseline ran with calibration = {choices[0]!r} and the intervention with {choices[1]!r}: the "
                "differences mix the intervention with the change of calibrated values.")
    files = [manifest.get("baseline", {}).get("parameters", {}).get("run", {}).get("ensemble"),
             manifest.get("parameters", {}).get("run", {}).get("ensemble")]
    if ensemble and None not in files and files[0] != files[1]:
        return (f"The baseline drew its calibrated values from {files[0]} and the intervention from {files[1]}: a "
                "replicate's member of one is not the same parameter set as its member of the other, so the differences "
                "mix the intervention with the change of calibrated values.")
    if ensemble:
        return (f"Each replicate ran with one of the {ensemble['members']} members of the calibration ensemble "
                f"(parameter sets selected on the calibration targets; calibration/{ensemble['file']}), the same "
                "member in both arms, so the intervals carry the calibration's uncertainty as far as the ensemble reaches.")
    return "Every replicate ran with the single point fit of the calibration (calibration/fitted.toml)."


def _decision_section(folder: Path, rows: pd.DataFrame, manifest: dict) -> str:
    """Is it worth it? ``decision_words`` with the acceptability curve and value-of-information figure."""
    from ..appraisal import decision as D

    words = decision_words(rows, D.priors_from_manifest(manifest["parameters"]))
    curve, voi = D.acceptability(rows), D.value_of_information(rows)
    fig = F.save(F.decision_figure(curve, voi), folder / "figures" / "decision.png")
    caveat = ('<p class="note">A demonstration of the method, not a business case: the effects rest on evaluations of similar programmes '
              "elsewhere (no evaluation of the Essex proposal exists), many inputs are assumptions, and the calibration misses one target.</p>")
    return (f"<p>{' '.join(html.escape(w) for w in words)}</p>"
            f"{_figure(fig, 'Left: the chance that benefits exceed costs if a place cost more or less (acceptability curve). Right: the expected value of perfect information on each group of inputs (Strong, Oakley & Brennan 2014 regression method).')}{caveat}")


def _programme_title(params: dict) -> str:
    """What a comparison's programme is, from its parameters (as the manifest records them)."""
    def on(section, key):
        v = params[section][key]
        v = v.get("value", v) if isinstance(v, dict) and "dist" not in v else v
        return not isinstance(v, (int, float)) or v > 0

    offender_family = on("intervention", "coverage") and on("intervention", "intensity_hours_per_month")
    hub = "da_hub" in params and on("da_hub", "capacity_victims_per_year")
    if offender_family and hub:
        return "Multi-agency offender-and-family intervention and the domestic-abuse hub"
    return "Domestic-abuse hub" if hub else "Multi-agency offender-and-family intervention"


def comparison_report(folder: Path) -> Path:
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    table = pd.read_csv(folder / "comparison.csv").set_index("metric")
    rows = pd.read_csv(folder / "replicates.csv")
    series = pd.read_parquet(folder / "timeseries.parquet")
    ledger = pd.read_parquet(folder / "ledger.parquet")
    params = manifest["parameters"]
    discount = discount_settings(manifest)
    rate = discount.discount_rate
    (folder / "figures").mkdir(exist_ok=True)
    figs = {
        "difference": F.save(F.difference_figure(series), folder / "figures" / "difference.png"),
        "timeseries": F.save(F.timeseries_figure(series), folder / "figures" / "timeseries.png"),
        "savings": F.save(F.savings_figure(ledger), folder / "figures" / "savings_by_agency_and_kind.png"),
        "net_benefit": F.save(F.net_benefit_figure(ledger, discount), folder / "figures" / "cumulative_net_benefit.png"),
    }
    sens = F.sensitivity_table(rows)
    if len(sens):
        figs["sensitivity"] = F.save(F.tornado_figure(sens), folder / "figures" / "sensitivity.png")

    def t(metric, col="difference"):
        return float(table.loc[metric, col]) if metric in table.index else float("nan")

    def ci(metric, fmt, scale=1.0, negate=False):
        lo, hi = t(metric, "difference_p05") * scale, t(metric, "difference_p95") * scale
        lo, hi = (-hi, -lo) if negate else (lo, hi)
        return f"90%: {fmt(lo)} to {fmt(hi)}"

    pp = lambda v: f"{v:+.1f} pp" if v == v else "n/a"  # noqa: E731
    n = lambda v: num(v)  # noqa: E731
    years = manifest["months"] / 12
    cards = "".join([
        _card(n(-t("offences")), f"crimes avoided over {years:g} years", ci("offences", n, negate=True)),
        _card(pp(100 * t("proven_reoffending_prison")), "change in one-year proven reoffending, prison cohort", ci("proven_reoffending_prison", pp, 100)),
        _card(pp(100 * t("proven_reoffending_probation")), "change in one-year proven reoffending, probation cohort", ci("proven_reoffending_probation", pp, 100)),
        _card(n(-t("child_first_time_entrants")), "children kept out of the CJS (fewer child first-time entrants)", ci("child_first_time_entrants", n, negate=True)),
        _card(money(t("appraisal:net_fiscal_benefit")), "net fiscal benefit (present value)", ci("appraisal:net_fiscal_benefit", money)),
        _card(money(t("appraisal:npv")), "net present value (fiscal, economic, social)", ci("appraisal:npv", money)),
        _card(num(t("appraisal:bcr"), 2), "benefit-cost ratio", ci("appraisal:bcr", lambda v: num(v, 2))),
        _card(f"{100 * t('appraisal:benefits_exceed_costs'):.0f}%", "chance benefits exceed costs", f"share of {len(rows)} replicates with NPV > 0"),
    ])
    money_rows = [m for m in table.index if m.startswith(("savings_by_agency:", "savings_by_kind:", "appraisal:"))]
    money_table = table.loc[money_rows, ["unit", "difference", "difference_p05", "difference_p95", "description"]].reset_index()
    money_table["metric"] = money_table["metric"].map(_label)
    for c in ("difference", "difference_p05", "difference_p95"):
        money_table[c] = [(money(v) if u.startswith("GBP") else num(v, 2)) for v, u in zip(money_table[c], money_table["unit"])]
    outcome_rows = [m for m in table.index if not m.startswith(("savings_by_agency:", "savings_by_kind:", "appraisal:"))]
    outcomes = table.loc[outcome_rows, ["unit", "baseline", "intervention", "difference", "difference_p05", "difference_p95"]].reset_index()
    outcomes["metric"] = outcomes["metric"].map(_label)
    for c in ("baseline", "intervention", "difference", "difference_p05", "difference_p95"):
        outcomes[c] = [(num(v, 3) if u == "proportion" else num(v)) for v, u in zip(outcomes[c], outcomes["unit"])]
    payback = t("appraisal:payback_year")
    share_paid = t("appraisal:share_paying_back")
    uncertain = [c.removeprefix("parameter:") for c in rows.columns if c.startswith("parameter:")]
    sens_html = (_figure(figs["sensitivity"], "What drives the answer: standardised rank regression coefficients of NPV and crimes avoided on the uncertain inputs, over the Monte Carlo replicates (longest bar matters most).")
                 if "sensitivity" in figs else
                 (f'<p class="note">Too few replicates ({len(rows)}) to tell which of the {len(uncertain)} uncertain inputs matters most: '
                  "rerun with more --reps than inputs.</p>" if uncertain else
                  '<p class="note">No input was given as a distribution, so the intervals above carry chance only. '
                  "Give the uncertain inputs distributions (README, parameter uncertainty) to see which assumption matters most.</p>"))
    body = f"""
<h1>{html.escape(_programme_title(params))}: what it would buy</h1>
<p class="sub">{html.escape(manifest['scenario'])} vs {html.escape(manifest['baseline']['scenario'])}: Greater Essex, {years:g} years,
{len(rows)} paired Monte Carlo replicates (root seed {manifest['seed']}). Prices {params['costs']['base_price_year']}, discounted at {100 * float(rate):.1f}% a year
({100 * discount.discount_rate_after_30_years:.1f}% after year 30). {html.escape(_calibration_words(manifest))}</p>
<h2>The question</h2>
<p>If partners fund the multi-agency intervention as set out below, how much crime, reoffending and intergenerational offending is
avoided, who saves what and when, and is it worth it? Each replicate runs the same people twice, with and without the intervention,
on the same random numbers, so the differences measure the intervention.</p>
{_plain_scenario(params)}
<h2>Headline</h2>
<div class="headline">{cards}</div>
<p>Payback (fiscal savings covering the intervention's cost): {"year " + num(payback) + " (median over replicates)" if payback == payback else "not within the appraisal period"};
{num(100 * share_paid) if share_paid == share_paid else "n/a"}% of replicates pay back within it.
Uncertain inputs drawn per replicate: {html.escape(", ".join(uncertain)) if uncertain else "none"}.</p>
<h2>Is it worth it?</h2>
{_decision_section(folder, rows, manifest)}
<h2>Crime and justice over time</h2>
{_figure(figs["difference"], "What the intervention changes, year by year: intervention minus baseline on the same people and random numbers (mean and 90% band).")}
{_figure(figs["timeseries"], "Monthly series, baseline (grey) and intervention (blue): mean over replicates with the 5-95% band.")}
{_table(outcomes, {"baseline", "intervention", "difference", "difference_p05", "difference_p95"})}
<h2>Who saves what</h2>
{_figure(figs["savings"], "Yearly savings (baseline minus intervention costs, undiscounted), by agency and by kind: cashable and non-cashable fiscal, economic, social.")}
{_figure(figs["net_benefit"], "Cumulative discounted net benefit: all benefits but transfers, and fiscal only (transfers included), minus the intervention's cost.")}
{_table(money_table, {"difference", "difference_p05", "difference_p95"})}
<h2>Where the benefit comes from</h2>
{_channels_section(folder)}
<h2>What drives the answer</h2>
{sens_html}
<h2>Calibration</h2>
{_calibration_section(folder, rows)}
<h3>Is the baseline steady?</h3>
{_steadiness_section(folder, series)}
<h2>Assumptions and sources</h2>
<p>Every intervention and cost value with its unit, price year, evidence grade and source:</p>
{_assumptions(manifest)}
<p class="sub">reoffsim {html.escape(str(manifest['versions'].get('reoffsim')))}, Mesa {html.escape(str(manifest['versions'].get('mesa')))},
git {html.escape(str(manifest.get('git_commit')))}, created {html.escape(manifest['created_utc'])}. Replicate seeds are in manifest.json.</p>
"""
    return _write(folder, "Multi-agency intervention report", body)


def sweep_report(folder: Path) -> Path:
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    sweep = pd.read_csv(folder / "sweep.csv")
    keys = [k for k in sweep.columns if "." in k and not k.startswith("appraisal")]
    x = keys[0]
    group = keys[1] if len(keys) > 1 else None
    (folder / "figures").mkdir(exist_ok=True)
    path = F.save(F.dose_response_figure(sweep, x, group), folder / "figures" / "dose_response.png")
    best = sweep.loc[sweep["appraisal:npv"].idxmax()] if sweep["appraisal:npv"].notna().any() else None
    best_text = (", ".join(f"{k.split('.')[-1].replace('_', ' ')} = {best[k]}" for k in keys) + f" (NPV {money(best['appraisal:npv'])})") if best is not None else "n/a"
    shown = sweep[keys + ["offences", "appraisal:intervention_cost", "appraisal:npv", "appraisal:bcr", "appraisal:benefits_exceed_costs"]].copy()
    shown["offences"] = [num(-v) for v in shown["offences"]]
    shown = shown.rename(columns={"offences": "crimes avoided"})
    for c in ("appraisal:intervention_cost", "appraisal:npv"):
        shown[c] = [money(v) for v in shown[c]]
    shown["appraisal:bcr"] = [num(v, 2) for v in shown["appraisal:bcr"]]
    body = f"""
<h1>Dose-response: how intensely to fund the intervention</h1>
<p class="sub">{html.escape(manifest['scenario'])}: {manifest['replicates']} paired replicates per grid point, each against the intervention switched off.</p>
<p>Best net present value at: <b>{html.escape(best_text)}</b>.</p>
{_figure(path, "Crime avoided and benefit-cost ratio against intensity, with 90% intervals; the ringed point has the best NPV.")}
{_table(shown, set(shown.columns) - set(keys))}
"""
    return _write(folder, "Dose-response report", body)


def portfolio_verdict(table: pd.DataFrame) -> str:
    """In words, from a portfolio table: is the combination worth more or less than the sum of its parts (its
    NPV's interaction), with what chance, and the same for the offences avoided."""
    t = table[table["kind"] == "interaction"].set_index("metric")
    npv, crimes = t.loc["appraisal:npv"], t.loc["appraisal:offences_avoided"]
    if (t.loc[["appraisal:npv", "appraisal:offences_avoided"], ["p_above_zero", "p_below_zero"]] == 0).all(axis=None):
        return "The combination is worth exactly the sum of its parts: the programmes do not interact in any replicate."
    verdict = ("likely worth more than" if npv["p_above_zero"] >= 0.7 else "likely worth less than" if npv["p_below_zero"] >= 0.7
               else "not distinguishable from")
    more = "more" if crimes["mean"] >= 0 else "fewer"
    return (f"The combination is {verdict} the sum of its parts: its net present value differs from the sum of the programmes' "
            f"alone by {money(npv['mean'])} (90%: {money(npv['p05'])} to {money(npv['p95'])}), more in {100 * npv['p_above_zero']:.0f}% "
            f"of replicates and less in {100 * npv['p_below_zero']:.0f}%; it avoids {num(abs(crimes['mean']))} {more} offences than the "
            f"programmes alone add up to (90%: {num(crimes['p05'])} to {num(crimes['p95'])}; more in {100 * crimes['p_above_zero']:.0f}% of replicates).")


def _setting(v) -> str:
    """A setting as a manifest records it, in words: a distribution as such, money with its price year."""
    if isinstance(v, dict) and "price_year" in v:
        return f"{_setting(v['value'])} ({v['price_year']} prices)"
    if isinstance(v, dict) and "dist" in v:
        return str(Dist.from_dict(v))
    return json.dumps(v)


def portfolio_report(folder: Path) -> Path:
    """The report of a portfolio folder: what each programme changes, each alone and their combination against the
    baseline, and whether the combination is worth more or less than the sum of its parts."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    table = pd.read_csv(folder / "portfolio.csv")
    (folder / "figures").mkdir(exist_ok=True)
    fig = F.save(F.portfolio_figure(table), folder / "figures" / "portfolio.png")
    discount = discount_settings(manifest)
    combo = manifest["combination"]
    changes = pd.DataFrame([{"programme": p["scenario"], "setting": key, "value": _setting(v)}
                            for p in [*manifest["programmes"], *([combo] if combo["given"] else [])] for key, v in p["changes"].items()],
                           columns=["programme", "setting", "value"])
    built = (f"given in {html.escape(str(combo['scenario_file']))}" if combo["given"] else
             "built from the baseline with every programme's settings that differ from the baseline's applied on top (no two programmes may set one key differently)")
    shown = table.assign(**{c: [(money(v) if u.startswith("GBP") else num(v, 2 if u == "ratio" else 0)) for v, u in zip(table[c], table["unit"])]
                            for c in ("mean", "p05", "p95")},
                         chance=[f"{100 * a:.0f}% / {100 * b:.0f}%" if a == a else "" for a, b in zip(table["p_above_zero"], table["p_below_zero"])])
    shown = shown[["label", "arm", "mean", "p05", "p95", "chance"]].rename(columns={"chance": "above / below zero"})
    names = ", ".join(p["scenario"] for p in manifest["programmes"])
    body = f"""
<h1>Portfolio: is the combination worth more than the sum of its parts?</h1>
<p class="sub">{html.escape(names)} and their combination {html.escape(combo['scenario'])} vs {html.escape(manifest['baseline']['scenario'])}:
Greater Essex, {manifest['months'] / 12:g} years, {manifest['replicates']} paired Monte Carlo replicates (root seed {manifest['seed']}), every arm on the same seeds.
Prices {manifest['parameters']['costs']['base_price_year']}, discounted at {100 * discount.discount_rate:.1f}% a year ({100 * discount.discount_rate_after_30_years:.1f}% after year 30).</p>
<h2>The question</h2>
<p>If partners fund these programmes together, do they add up, or does one make the other worth more (or less)? Each replicate runs the
same people under the baseline, each programme alone and the combination, on the same random numbers and the same draws of the uncertain
inputs, and prices every arm with the combination's unit costs. The <b>interaction</b> is the combination's incremental outcome minus
the sum of the programmes' alone, replicate by replicate, so its interval is the Monte Carlo band of the interaction itself.</p>
<p>The combination is {built}. What each programme changes from the baseline:</p>
{_table(changes)}
<h2>Portfolio</h2>
<p class="note">{html.escape(portfolio_verdict(table))}</p>
{_figure(fig, "Offences avoided and net present value of each programme alone, their combination, the sum of the programmes alone and the interaction (combination minus that sum): mean and 90% interval over replicates.")}
<p>By arm (each against the baseline; the sum of programmes' benefit-cost ratio is their summed savings over their summed costs, and
the interaction's the combination's ratio minus it; 'above / below zero' is the share of replicates):</p>
{_table(shown, {"mean", "p05", "p95", "above / below zero"})}
<p>Each arm's full appraisal against the baseline is in its comparison_&lt;arm&gt;.csv; every replicate in replicates.csv and portfolio_replicates.csv.</p>
<p class="sub">reoffsim {html.escape(str(manifest['versions'].get('reoffsim')))}, Mesa {html.escape(str(manifest['versions'].get('mesa')))},
git {html.escape(str(manifest.get('git_commit')))}, created {html.escape(manifest['created_utc'])}. Replicate seeds are in manifest.json.</p>
"""
    return _write(folder, "Portfolio report", body)


def _write(folder: Path, title: str, body: str) -> Path:
    page = f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>'
    out = folder / "report.html"
    tmp = folder / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def report(folder: str | Path) -> Path:
    """Write report.html (and figures/*.png) for a comparison, portfolio or sweep folder."""
    folder = Path(folder)
    kind = read_manifest(folder, ("comparison", "portfolio", "sweep"))["kind"]
    return {"comparison": comparison_report, "portfolio": portfolio_report, "sweep": sweep_report}[kind](folder)
