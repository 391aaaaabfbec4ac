#!/usr/bin/env bash
# Adopt this refit into the checkout this is run from (its root), once `sim ensemble` has finished in the refit's
# worktree (README here): the steps that make files, in order; the README's words and numbers are left to be written
# from what they print. Stops at the first failure; nothing is committed.
#   calibration/refits/next/adopt.sh /tmp/next        # the refit's worktree
set -euo pipefail
worktree=${1:?the refit worktree (it holds calibration/ensemble.parquet, fitted.toml and history_matching/)}
root=$(git rev-parse --show-toplevel)
cd "$root"
py=.venv/py3.11/bin/python

echo "1. the patch, the store, the ensemble and the point"
git apply calibration/refits/next/refit.patch
rm -rf calibration/history_matching
cp -r "$worktree/calibration/history_matching" calibration/
cp "$worktree/calibration/ensemble.parquet" "$worktree/calibration/fitted.toml" calibration/
sha=$(sha256sum scenarios/baseline.toml | cut -d' ' -f1)
sed -i "s/\"scenario_sha256\": \"[0-9a-f]*\"/\"scenario_sha256\": \"$sha\"/" calibration/history_matching/settings.json
$py -m sim.present.paramdoc > docs/parameters.md

echo "2. the ensemble as sim ensemble --show reads it (the README's parameter table)"
$py -m sim ensemble --show | tee /tmp/adopt_ensemble_show.txt

echo "3. the validation on seeds the fit did not use (the README's calibration table and figures; about 15 minutes)"
$py -m sim validate --ensemble --reps 16 --seed 1007 --out outputs/validation_adopt --force | tee /tmp/adopt_validate.txt
cp outputs/validation_adopt/calibration.png outputs/validation_adopt/steadiness.png docs/images/

echo "4. make run (the README's headline, commentary and figures; about 6 minutes)"
make run | tee /tmp/adopt_make_run.txt
for f in channels decision savings_by_agency_and_kind sensitivity; do
    cp "outputs/multi_agency_vs_baseline/figures/$f.png" docs/images/
done

echo "5. the app's dose-response sweep (about 21 minutes)"
$py -m sim sweep scenarios/multi_agency.toml --set intervention.intensity_hours_per_month=5,10,15,20,30,40 \
    --set intervention.capacity_families_per_year=300,600,1000 --reps 40 --seed 1 --out outputs/app_dose_response --force
cp outputs/app_dose_response/sweep.csv sim/app/dose_response.csv

echo "done: now the README (calibration tables, steadiness, make run's numbers, the paragraphs that said these changes"
echo "waited for a refit), tests/test_calibration.py's texts, then delete calibration/refits/next and calibration/refits/cautions"
