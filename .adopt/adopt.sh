#!/bin/bash
# Bring the finished ensemble of /work/fitA into /work/main's adopt-consistent-start branch.
set -e
cd /work/main
git checkout -q adopt-consistent-start
git merge -q --no-edit main
rm -rf calibration/history_matching
cp -r /work/fitA/calibration/history_matching calibration/history_matching
cp /work/fitA/calibration/ensemble.parquet calibration/ensemble.parquet
.venv/py3.11/bin/python - <<'PY'
import json, hashlib
p = "calibration/history_matching/settings.json"
s = json.loads(open(p).read())
s["scenario_sha256"] = hashlib.sha256(open("scenarios/baseline.toml", "rb").read()).hexdigest()
s["overrides"] = ["population.scale_general=40", "population.scale_cjs_families=2"]
open(p, "w").write(json.dumps(s, sort_keys=True, indent=1))
PY
.venv/py3.11/bin/python .adopt/adopt_fitted.py
.venv/py3.11/bin/python -m sim.present.paramdoc > docs/parameters.md
git status --short
