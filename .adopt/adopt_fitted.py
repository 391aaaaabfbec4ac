"""Write calibration/fitted.toml from the ensemble's member of least loss (run in the adopting checkout)."""
import sys, datetime
import numpy as np, pandas as pd
from sim.fitting import calibration as cal
from sim.fitting.history_matching import fitted_targets
frame = pd.read_parquet("calibration/ensemble.parquet")
targets = fitted_targets()
loss = sum(t.weight * ((frame[t.metric] - t.value) / t.half_width) ** 2 for t in targets)
best = int(np.argmin(loss.to_numpy()))
free = cal.load_free_parameters()
values = {k: float(frame.loc[best, "value:" + k]) for k in free}
print("member", best, "loss", round(float(loss.iloc[best]), 3), values)
n_reps = int(sys.argv[1]) if len(sys.argv) > 1 else 8
rows = [{"target": t.name, "simulated": frame.loc[best, t.metric], "sim_p05": frame.loc[best, t.metric] - 1.645 * frame.loc[best, "se:" + t.metric],
         "sim_p95": frame.loc[best, t.metric] + 1.645 * frame.loc[best, "se:" + t.metric], "replicates": n_reps} for t in targets]
fit = {"stage": "joint", "method": f"history matching, then the calibration ensemble's member of least loss (member {best} of {len(frame)})",
       "values": values, "loss": float(loss.iloc[best]), "evaluations": len(frame), "seconds": 0, "reps": 8, "long_reps": 2, "seed": 1,
       "parameters": list(free), "overrides": ["population.scale_general=40", "population.scale_cjs_families=2"]}
cal.write_fitted([fit], pd.DataFrame(rows))
text = open("calibration/fitted.toml").read()
today = datetime.date.today().isoformat()
text = text.replace("# Fitted by `sim calibrate` (sim/fitting/calibration.py); scenarios/baseline.toml extends this file.", "# The calibration ensemble's member of least loss (sim ensemble, sim/fitting/ensemble.py); scenarios/baseline.toml extends this file.").replace("seconds = 0, ", "").replace(f"fitted by sim calibrate (joint stage, {today})", f"the calibration ensemble's member of least loss (sim ensemble, {today}; member {best})")
open("calibration/fitted.toml", "w").write(text)
